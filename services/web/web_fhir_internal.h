/* Shared by web_fhir.c and web_fhir_write.c: one API request and its answer. */
#ifndef HX_WEB_FHIR_INTERNAL_H
#define HX_WEB_FHIR_INTERNAL_H
#include "web_fhir.h"

typedef struct {
    web_t *w;
    struct MHD_Connection *conn;
    const char *method, *url, *address;
    const char *body;
    size_t len;
    char base[512];                 /* https://host/fhir/r4 */
    hx_api_client_t grant;          /* the token's client, clinic and scopes */
    web_hosted_t *h;                /* the token's clinic */
    /* the answer */
    int status;
    json_t *out;
    char location[720];
    char etag[48];
    char last_modified[48];
    char www_authenticate[160];
    const char *content_type;       /* NULL: application/fhir+json */
    /* the audit line */
    char audit_action[64];
    char audit_rid[64];
    char audit_detail[160];
} fx_t;

/* Answers with an OperationOutcome of one issue (takes the status). */
void fx_fail(fx_t *x, int status, const char *code, const char *diagnostics, const char *expression);
/* Answers with oo (a reference taken). */
void fx_fail_oo(fx_t *x, int status, json_t *oo);
/* Answers with a resource (a reference taken): ETag and Last-Modified from its meta. */
void fx_resource(fx_t *x, int status, json_t *res);
/* Whether the token's scopes allow perm on type; refuses (403) when not. */
bool fx_allowed(fx_t *x, const char *type, char perm);
/* The request body as JSON (objects only), or NULL after answering 400. */
json_t *fx_body_json(fx_t *x);
/* The clinic's view, or NULL after answering 500. fx_view_of: of referral rid alone (NULL:
 * the whole store), which is all a resource of that referral is built from. */
hx_fhir_view_t *fx_view(fx_t *x);
hx_fhir_view_t *fx_view_of(fx_t *x, const char *rid);
/* A request header, or NULL. */
const char *fx_header(fx_t *x, const char *name);

/* ---- web_fhir_write.c ---- */
void fx_submit(fx_t *x);
void fx_task_update(fx_t *x, const char *id, bool patch);
void fx_communication_create(fx_t *x);
void fx_subscription(fx_t *x, const char *id);

#endif
