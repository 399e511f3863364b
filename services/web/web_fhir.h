/* handoff-web's FHIR R4 API (docs/FHIR.md), beside the portal in the same process: it shares
 * the portal's HTTP server, its accounts store (hx_api.h keeps the API's clients, tokens and
 * subscriptions there) and, above all, its hosted clinics: a clinic's mailbox is drained into
 * one local store by one broker session, so an API in another process would have to split the
 * clinic's messages between two stores.
 *
 *   web_fhir.c         routing under /fhir/r4, bearer tokens and scopes, the token endpoint,
 *                      /metadata, read, search with paging and _include, audit
 *   web_fhir_write.c   the transaction Bundle (submit), Task updates (PUT, JSON Patch),
 *                      POST Communication, Subscription create/read/update/delete
 *   web_fhir_view.c    a hosted clinic's store loaded into an hx_fhir_view_t
 *   web_fhir_notify.c  subscriptions' rest-hook deliveries: a thread, cursors in the accounts
 *                      store, retries with backoff
 *
 * Every answer is application/fhir+json; every refusal an OperationOutcome. */
#ifndef HX_WEB_FHIR_H
#define HX_WEB_FHIR_H
#include "hx_api.h"
#include "hx_fhir.h"
#include "web.h"

#define WEB_FHIR_BODY_MAX (4u * 1024u * 1024u)  /* a request body: a Bundle with attachments */
#define WEB_FHIR_ENTRIES_MAX 32                  /* entries of a submitted Bundle */
#define WEB_FHIR_PAGE 50                         /* _count by default */
#define WEB_FHIR_PAGE_MAX 200

struct MHD_Connection;
struct MHD_Response;

/* Whether url is the API's (/fhir/r4 or below). */
bool web_fhir_path(const char *url);
/* Answers one API request: its body (may be NULL), the client's address. Sets *status. */
struct MHD_Response *web_fhir_request(web_t *w, struct MHD_Connection *conn, const char *method, const char *url,
                                      const char *body, size_t len, const char *address, int *status);

/* Loads hosted clinic h's store into a new view (takes h->mu). 0, or -1 with why in err. */
int web_fhir_view_load(web_t *w, web_hosted_t *h, hx_fhir_view_t **out, char *err, size_t cap);
/* The same with one referral's messages only: every resource of that referral, as the whole
 * view has it, at that referral's cost. */
int web_fhir_view_load_referral(web_t *w, web_hosted_t *h, const char *rid, hx_fhir_view_t **out, char *err,
                                size_t cap);
/* The referral of a resource id that belongs to one (ServiceRequest, Task, Patient,
 * Practitioner, PractitionerRole, Appointment ids that start with a referral id): true with
 * rid set; false for others (the directory's, posts'). */
bool web_fhir_referral_of(hx_fhir_type_t t, const char *id, char rid[HX_REFERRAL_ID_LEN + 1]);

/* The notifier: starts after the hosted clinics are open, stops before they close. kick: a
 * clinic's store moved (the sync thread, an action), deliver without waiting for the tick. */
int web_fhir_notify_start(web_t *w);
void web_fhir_notify_stop(web_t *w);
void web_fhir_notify_kick(web_t *w);

#endif
