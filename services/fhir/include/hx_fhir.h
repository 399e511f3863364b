/* hx_fhir — a clinic's referrals as HL7 FHIR R4 resources, and FHIR input read back into the
 * network's own messages: the one place the mapping lives (docs/FHIR.md lists it). Pure: no
 * I/O, no clock, no locks; handoff-web's FHIR API (services/web/web_fhir*.c) loads a clinic's
 * store into a view and answers from it.
 *
 * What a clinic may read is exactly what its own store holds: the referrals it sent, the
 * handoffs it received, the status updates and care-thread posts the broker delivered to its
 * mailbox. A view is built from that store and nothing else, so no search, include or
 * notification can show a resource of another clinic's.
 *
 * Resource ids (all valid FHIR ids, [A-Za-z0-9-.]{1,64}):
 *   ServiceRequest/R-XXXXXXXXXXXXXXXX          the referral (its network-wide id)
 *   Task/R-...                                  the referral's parent Task
 *   Task/R-...-physiotherapy, -massage-therapy  one child Task per handoff (partOf the parent)
 *   Appointment/R-...-physiotherapy, ...        the booking of that handoff
 *   Patient/R-...-patient                       the patient, only what the referral carries
 *   Practitioner/R-...-referrer, PractitionerRole/R-...-referrer   the referrer as written
 *   Communication/P-...                         a care-thread post (its post id)
 *   DocumentReference/P-..., Binary/P-...       a post's attachment
 *   Organization/CLINIC, Location/CLINIC        a clinic of the directory (or only its id)
 *   Practitioner/THERAPIST, PractitionerRole/THERAPIST   a therapist of the directory
 *
 * Errors are OperationOutcome resources (hx_fhir_outcome); an issue's expression is the
 * FHIRPath of the offending element ("Bundle.entry[1].resource.birthDate"). */
#ifndef HX_FHIR_H
#define HX_FHIR_H
#include "hx_errors.h"
#include "referral.pb-c.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hx_directory hx_directory_t;    /* hx_schedule.h */

/* The directory (scheduling's --directory file) for programs that cannot include hx_schedule.h
 * beside hx_clinic.h (both name a type hx_clinic_t): NULL with why in err. */
hx_directory_t *hx_fhir_directory_load(const char *path, char *err, size_t cap);
void hx_fhir_directory_free(hx_directory_t **d);

/* Code systems and identifier systems of the network's own. */
#define HX_FHIR_SYS_REFERRAL_ID "urn:handoff:referral-id"   /* ServiceRequest.identifier: the network id */
#define HX_FHIR_SYS_REF "urn:handoff:ref"                   /* ServiceRequest.identifier: the referrer's ref */
#define HX_FHIR_SYS_CLINIC "urn:handoff:clinic"             /* Organization.identifier */
#define HX_FHIR_SYS_THERAPIST "urn:handoff:therapist"       /* Practitioner(Role).identifier */
#define HX_FHIR_SYS_DISCIPLINE "urn:handoff:discipline"     /* physiotherapy, massage-therapy, physician */
#define HX_FHIR_SYS_BUSINESS "urn:handoff:business-status"  /* Task.businessStatus (hx_inbox_status_text) */
#define HX_FHIR_SYS_EVENT "urn:handoff:event"               /* the lifecycle event that made a change */
#define HX_FHIR_SYS_CONDITION "urn:handoff:condition"       /* condition codes (services/triage/rules.json) */
#define HX_FHIR_SYS_FINDING "urn:handoff:finding"           /* red-flag and contraindication codes */
#define HX_FHIR_SYS_POST_KIND "urn:handoff:post-kind"       /* Communication.category: note, question, ... */
#define HX_FHIR_SYS_TASK_CODE "urn:handoff:task"            /* Task.code: referral, handoff */
#define HX_FHIR_SYS_CPO "urn:handoff:registration:CPO"      /* registration numbers: urn:handoff:registration:BODY */
#define HX_FHIR_SNOMED "http://snomed.info/sct"

/* The topics a Subscription may name (criteria), R4 backport IG. */
#define HX_FHIR_TOPIC_TASK "urn:handoff:topic:owned-task-changed"
#define HX_FHIR_TOPIC_SERVICE_REQUEST "urn:handoff:topic:sent-service-request-changed"

typedef enum {
    HX_FHIR_SERVICE_REQUEST,
    HX_FHIR_TASK,
    HX_FHIR_PATIENT,
    HX_FHIR_PRACTITIONER,
    HX_FHIR_PRACTITIONER_ROLE,
    HX_FHIR_ORGANIZATION,
    HX_FHIR_LOCATION,
    HX_FHIR_APPOINTMENT,
    HX_FHIR_COMMUNICATION,
    HX_FHIR_DOCUMENT_REFERENCE,
    HX_FHIR_BINARY,
    HX_FHIR_TYPE_COUNT
} hx_fhir_type_t;

/* "ServiceRequest", ... and back (HX_FHIR_TYPE_COUNT: not one of these). */
const char *hx_fhir_type_name(hx_fhir_type_t t);
hx_fhir_type_t hx_fhir_type_from_name(const char *name);
/* Whether s is a FHIR id: [A-Za-z0-9-.]{1,64}. */
bool hx_fhir_id_valid(const char *s);
/* An instant as FHIR writes it: "2026-11-28T17:03:09.123Z" (cap >= 25). */
void hx_fhir_instant(uint64_t ms, char *out, size_t cap);
/* The instant (or date, or dateTime with or without seconds/zone) s as ms since the epoch;
 * a date or partial time is its first millisecond. 0 with *ms, -1 when s is not one. */
int hx_fhir_parse_instant(const char *s, uint64_t *ms);

/* ---- OperationOutcome ---------------------------------------------------------------------- */

/* An OperationOutcome with one issue (a new reference). severity: "error", "warning",
 * "information"; code: an IssueType ("invalid", "required", "value", "structure",
 * "not-found", "forbidden", "security", "conflict", "business-rule", "too-costly",
 * "not-supported", "processing", "exception", "login", "informational", "duplicate",
 * "timeout", "throttled"); expression: a FHIRPath, or NULL. */
json_t *hx_fhir_outcome(const char *severity, const char *code, const char *diagnostics, const char *expression);
/* Adds an issue to an OperationOutcome. */
void hx_fhir_outcome_add(json_t *oo, const char *severity, const char *code, const char *diagnostics,
                         const char *expression);

/* ---- the view: one clinic's referrals -------------------------------------------------------- */

typedef struct hx_fhir_view hx_fhir_view_t;

/* An empty view of clinic (its id, copied); dir (may be NULL: Organization, Location and the
 * therapists are then only what the messages name) is borrowed and must outlive the view.
 * NULL when out of memory. */
hx_fhir_view_t *hx_fhir_view_new(const char *clinic, const hx_directory_t *dir);
void hx_fhir_view_destroy(hx_fhir_view_t **self_p);
const char *hx_fhir_view_clinic(const hx_fhir_view_t *v);

/* Feeding the view, in the order the messages happened (as hx_inbox is fed). Each takes
 * ownership of the unpacked message (it is freed with the view, or at once on failure).
 * add_sent: a referral this clinic submitted; r is the referral as sent (NULL when the store
 * does not have it whole: the ServiceRequest then carries only its ids). 0, or HX_ENOMEM. */
int hx_fhir_view_add_sent(hx_fhir_view_t *v, const char *referral_id, const char *ref, Handoff__Referral *r,
                          uint64_t at_ms);
int hx_fhir_view_add_handoff(hx_fhir_view_t *v, Handoff__Handoff *h, uint64_t at_ms);
int hx_fhir_view_add_status(hx_fhir_view_t *v, Handoff__StatusUpdate *s, uint64_t at_ms);
int hx_fhir_view_add_post(hx_fhir_view_t *v, Handoff__ThreadPost *p, uint64_t at_ms);

/* Every resource of type t the clinic may read (a new array reference), most recently updated
 * first, then by id. Each has id, meta.lastUpdated (the latest message that touched it) and
 * meta.versionId (how many messages touched it, "1" for directory resources). */
json_t *hx_fhir_view_all(const hx_fhir_view_t *v, hx_fhir_type_t t);
/* One resource by id (a new reference), or NULL when the clinic may not read it or there is
 * none. */
json_t *hx_fhir_view_read(const hx_fhir_view_t *v, hx_fhir_type_t t, const char *id);
/* The referral (ServiceRequest id) of a child or parent Task id, or NULL; and which handoff
 * (discipline, 0 for the parent). For the API's Task updates. */
const char *hx_fhir_task_referral(const hx_fhir_view_t *v, const char *task_id, Handoff__Discipline *d);
/* Whether this clinic sent the referral (the referrer side) and whether it holds a handoff of
 * it (the receiving side; d: that handoff's discipline, 0 when it holds none). */
bool hx_fhir_view_sent(const hx_fhir_view_t *v, const char *referral_id);
bool hx_fhir_view_holds(const hx_fhir_view_t *v, const char *referral_id, Handoff__Discipline d);

/* ---- search -------------------------------------------------------------------------------- */

typedef struct {
    const char *name;           /* "owner", "status", "_lastUpdated", "_include", "_id" ...; a
                                   modifier stays in the name ("status:not") */
    const char *value;          /* URL-decoded */
} hx_fhir_param_t;

/* Searches the view. Parameters by type (docs/FHIR.md; _count and _offset are the caller's,
 * skipped here):
 *   every type   _id, _lastUpdated (eq ne gt lt ge le sa eb prefixes; repeatable: and)
 *   Task         owner, status, part-of, based-on, patient, code, business-status
 *   ServiceRequest  requester, status, identifier (SYSTEM|VALUE, VALUE), patient, subject,
 *                   priority, authored
 *   Communication   based-on, part-of, category, sender
 *   Appointment     based-on, actor, status, date
 *   Patient, Practitioner, PractitionerRole, Organization, Location: identifier, name (prefix,
 *                   case-insensitive); PractitionerRole also organization, specialty
 *   DocumentReference  related (the Communication), subject
 * Values may be comma-separated (or); a reference value may be "Type/id" or "id". _include:
 * Task:based-on, Task:owner, Task:part-of, Task:patient, Task:focus; ServiceRequest:subject,
 * ServiceRequest:requester, ServiceRequest:performer; Communication:based-on,
 * Communication:sender; Appointment:actor, Appointment:based-on; PractitionerRole:practitioner,
 * PractitionerRole:organization, PractitionerRole:location; DocumentReference:subject.
 * _revinclude is not supported. Matches are sorted as hx_fhir_view_all sorts.
 * 0 with *matches (array) and *included (array, each resource once, none of the matches);
 * -1 with *outcome (an OperationOutcome: an unknown parameter, a bad value) and both NULL. */
int hx_fhir_search(const hx_fhir_view_t *v, hx_fhir_type_t t, const hx_fhir_param_t *p, size_t n,
                   json_t **matches, json_t **included, json_t **outcome);

/* ---- reading FHIR input ---------------------------------------------------------------------- */

/* A referral submitted as a transaction Bundle: one ServiceRequest (POST, may carry
 * request.ifNoneExist "identifier=urn:handoff:ref|REF"), one Patient (its subject), the
 * requester as a PractitionerRole (and its Practitioner), optionally Condition-free coded
 * reasons in ServiceRequest.reasonCode (conditions) and supportingInfo, DocumentReference
 * entries (attachments, content[0].attachment.data base64 with contentType and title). */
#define HX_FHIR_ATTACH_MAX 8
typedef struct {
    Handoff__Referral *referral;        /* free with hx_fhir_submission_free */
    char ref[128];                      /* the referrer's ref (identifier urn:handoff:ref) */
    bool conditional;                   /* request.ifNoneExist names the ref */
    size_t n_attach;
    Handoff__Attachment *attach[HX_FHIR_ATTACH_MAX];    /* name, data (media_type left to scheduling) */
    char attach_path[HX_FHIR_ATTACH_MAX][64];           /* "Bundle.entry[3].resource" */
    char *full_url[4];                  /* the entries' fullUrl: ServiceRequest, Patient, PractitionerRole, Practitioner */
    size_t entry_sr, entry_patient, entry_role, entry_practitioner;  /* their indices in Bundle.entry */
    json_t *paths;                      /* intake field path ("patient.birth_date") -> FHIRPath */
} hx_fhir_submission_t;

/* Reads a transaction Bundle into *s (zeroed first). clinic: the submitting clinic (becomes
 * referring_clinic). 0, or -1 with *outcome saying every problem found, each with its
 * FHIRPath: not a Bundle, not a transaction, an unknown element, a missing entry, a code
 * outside its value set, an attachment too big (over 262144 bytes) or not base64, more than
 * max_entries entries ... Nothing in *s needs freeing after -1. */
int hx_fhir_read_submission(const json_t *bundle, const char *clinic, size_t max_entries, hx_fhir_submission_t *s,
                            json_t **outcome);
void hx_fhir_submission_free(hx_fhir_submission_t *s);
/* Intake's errors (hx_intake_validate: paths such as "patient.birth_date",
 * "preferences.availability[0].from") as an OperationOutcome whose issues' expressions are
 * where those fields came from in the Bundle (a new reference). */
json_t *hx_fhir_submission_outcome(const hx_fhir_submission_t *s, const hx_errors_t *errs);

/* A Task update: the Task as the view has it (old) and as the client wants it (new: a PUT
 * body, or old with a JSON Patch applied). Only status, businessStatus, statusReason, output,
 * owner (a redirect: Organization/CLINIC or PractitionerRole/THERAPIST, with statusReason)
 * and note may differ; anything else is refused with its FHIRPath. Status moves map to
 * events: accepted -> accept; rejected -> decline (statusReason.text required);
 * in-progress -> start; completed -> complete (output[].valueString: the summary, required);
 * failed -> fail (statusReason required); cancelled on the parent Task -> revoke; an owner
 * change -> redirect. 0 with ch filled (its strings malloc'd: hx_fhir_change_free), or -1 with
 * *outcome. The lifecycle's own rules (who may do what from where) are scheduling's: it
 * answers, and a refusal comes back as its reason. */
int hx_fhir_task_change(const json_t *old_task, const json_t *new_task, Handoff__StatusChange *ch, json_t **outcome);
void hx_fhir_change_free(Handoff__StatusChange *ch);

/* Applies a JSON Patch (RFC 6902: add, remove, replace, move, copy, test) to a copy of doc.
 * The result (a new reference), or NULL with *outcome (which operation failed and why). */
json_t *hx_fhir_json_patch(const json_t *doc, const json_t *patch, json_t **outcome);

/* A Communication posted to a referral's care thread: basedOn ServiceRequest/R-...,
 * payload[0].contentString (the text) and optionally one payload contentAttachment (data,
 * title, contentType), category urn:handoff:post-kind note|question|reply (default note),
 * inResponseTo Communication/P-... for a reply. 0 with *post (free with
 * handoff__thread_post__free_unpacked... allocated with protobuf-c's allocator: use
 * hx_fhir_post_free), or -1 with *outcome. */
int hx_fhir_read_communication(const json_t *c, Handoff__ThreadPost **post, json_t **outcome);
void hx_fhir_post_free(Handoff__ThreadPost **post);

/* ---- subscriptions (R4 backport) ------------------------------------------------------------ */

typedef enum { HX_FHIR_PAYLOAD_ID_ONLY, HX_FHIR_PAYLOAD_FULL, HX_FHIR_PAYLOAD_EMPTY } hx_fhir_payload_t;

typedef struct {
    char id[64];
    char topic[96];             /* HX_FHIR_TOPIC_TASK or HX_FHIR_TOPIC_SERVICE_REQUEST */
    char endpoint[512];         /* channel.endpoint: https:// (http:// only where allowed) */
    char header[256];           /* channel.header[0] ("Authorization: Bearer ..."), "" for none */
    hx_fhir_payload_t payload;
    char status[16];            /* requested, active, error, off */
    char reason[256];
    uint64_t end_ms;            /* 0: no end */
    uint64_t events;            /* events sent since it started */
    char error[256];            /* the last delivery's failure, "" when none */
} hx_fhir_sub_t;

/* Reads a Subscription a client POSTs or PUTs (criteria = a topic above; channel.type
 * rest-hook; channel.payload application/fhir+json with the backport payload-content extension
 * id-only / full-resource / empty, id-only by default; channel.endpoint; channel.header at
 * most one; end optional). allow_http: an http:// endpoint is taken (tests, a host's own
 * loopback); otherwise https:// only. 0, or -1 with *outcome. */
int hx_fhir_read_subscription(const json_t *in, bool allow_http, hx_fhir_sub_t *out, json_t **outcome);
/* The Subscription resource for s (a new reference); the header's value is never shown. */
json_t *hx_fhir_subscription_json(const hx_fhir_sub_t *s);

/* What one received message changed, for the topics: each Task this clinic owns (child Task
 * of a handoff it holds: a Handoff, a StatusUpdate's handoffs whose clinic_id is clinic) and,
 * when sent (this clinic sent the referral), its ServiceRequest (a StatusUpdate). type is the
 * stored type ("handoff.Handoff", "handoff.StatusUpdate", "handoff.ThreadPost",
 * "handoff.Refusal", ...); other types change nothing. */
typedef struct {
    const char *topic;          /* HX_FHIR_TOPIC_* */
    hx_fhir_type_t type;        /* HX_FHIR_TASK or HX_FHIR_SERVICE_REQUEST */
    char id[64];
} hx_fhir_focus_t;
/* Up to cap foci of the message; how many. */
size_t hx_fhir_message_foci(const char *clinic, bool sent, const char *type, const uint8_t *payload, size_t len,
                            hx_fhir_focus_t *out, size_t cap);

/* A notification Bundle (type history, its first entry the SubscriptionStatus Parameters of
 * the backport IG): type "handshake", "heartbeat" or "event-notification"; for an event, its
 * number, when it happened and its focus (focus_resource: the resource itself for
 * full-resource, NULL otherwise). base: the server's base URL ("https://host/fhir/r4"). */
json_t *hx_fhir_notification(const hx_fhir_sub_t *s, const char *base, const char *type, uint64_t event_number,
                             uint64_t at_ms, const hx_fhir_focus_t *focus, const json_t *focus_resource);

#endif
