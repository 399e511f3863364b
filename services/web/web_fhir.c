/* web_fhir — the FHIR R4 API's front (web_fhir.h): routing under /fhir/r4, the token endpoint
 * (OAuth 2.0 client credentials), bearer tokens and their scopes, the CapabilityStatement,
 * read and search with paging and _include, and one audit line per request. Writes are
 * web_fhir_write.c's. A token belongs to one clinic: every read is answered from that clinic's
 * own store (hx_fhir.h), so nothing of another clinic's can be found, read or included. */
#include "web_fhir_internal.h"

#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FHIR_PREFIX "/fhir/r4"

bool web_fhir_path(const char *url)
{
    size_t n = strlen(FHIR_PREFIX);
    return !strncmp(url, FHIR_PREFIX, n) && (url[n] == '\0' || url[n] == '/');
}

/* ---- answers ---- */

void fx_fail_oo(fx_t *x, int status, json_t *oo)
{
    json_decref(x->out);
    x->out = oo;
    x->status = status;
    x->w->fhir_refused++;
    /* the first issue's words go into the audit line: never a patient's detail (they name
     * elements and rules) */
    json_t *d = json_object_get(json_array_get(json_object_get(oo, "issue"), 0), "diagnostics");
    if (json_is_string(d))
        snprintf(x->audit_detail, sizeof x->audit_detail, "%d %s", status, json_string_value(d));
}

void fx_fail(fx_t *x, int status, const char *code, const char *diagnostics, const char *expression)
{
    fx_fail_oo(x, status, hx_fhir_outcome("error", code, diagnostics, expression));
}

void fx_resource(fx_t *x, int status, json_t *res)
{
    json_decref(x->out);
    x->out = res;
    x->status = status;
    json_t *meta = json_object_get(res, "meta");
    const char *v = json_string_value(json_object_get(meta, "versionId"));
    if (v)
        snprintf(x->etag, sizeof x->etag, "W/\"%s\"", v);
    uint64_t ms;
    const char *lu = json_string_value(json_object_get(meta, "lastUpdated"));
    if (lu && hx_fhir_parse_instant(lu, &ms) == 0) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(x->last_modified, sizeof x->last_modified, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    }
}

const char *fx_header(fx_t *x, const char *name)
{
    return MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, name);
}

bool fx_allowed(fx_t *x, const char *type, char perm)
{
    if (hx_api_scope_allows(x->grant.scopes, type, perm))
        return true;
    char why[160];
    const char *what = perm == 'c' ? "c" : perm == 'r' ? "r" : perm == 'u' ? "u" : perm == 'd' ? "d" : "s";
    snprintf(why, sizeof why, "this token's scopes do not allow this: it needs system/%s.%s", type, what);
    fx_fail(x, 403, "forbidden", why, NULL);
    x->w->denied++;
    return false;
}

json_t *fx_body_json(fx_t *x)
{
    if (!x->body || !x->len) {
        fx_fail(x, 400, "required", "the request has no body: a FHIR resource in JSON is expected", NULL);
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb(x->body, x->len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        char why[300];
        snprintf(why, sizeof why, "the body is not JSON: %s (line %d, column %d)", e.text, e.line, e.column);
        fx_fail(x, 400, "structure", why, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        fx_fail(x, 400, "structure", "the body is not a JSON object: a FHIR resource is one", NULL);
        return NULL;
    }
    return j;
}

hx_fhir_view_t *fx_view(fx_t *x)
{
    return fx_view_of(x, NULL);
}

hx_fhir_view_t *fx_view_of(fx_t *x, const char *rid)
{
    hx_fhir_view_t *v = NULL;
    char err[256];
    if ((rid ? web_fhir_view_load_referral(x->w, x->h, rid, &v, err, sizeof err)
             : web_fhir_view_load(x->w, x->h, &v, err, sizeof err)) != 0) {
        fprintf(stderr, "handoff-web: FHIR: clinic %s: %s\n", x->h->id, err);
        fx_fail(x, 500, "exception", "the clinic's store could not be read; try again", NULL);
        return NULL;
    }
    return v;
}

/* ---- the token endpoint ---- */

static void oauth_error(fx_t *x, int status, const char *error, const char *description)
{
    json_decref(x->out);
    x->out = json_pack("{s:s,s:s}", "error", error, "error_description", description);
    x->status = status;
    x->content_type = "application/json";
    x->w->fhir_refused++;
    snprintf(x->audit_detail, sizeof x->audit_detail, "%d %s", status, error);
}

/* The value of key in an application/x-www-form-urlencoded body, decoded into out. */
static bool form_value(const char *body, size_t len, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            size_t n = (size_t)(stop - p) - kl - 1;
            if (n >= cap)
                return false;
            memcpy(out, p + kl + 1, n);
            out[n] = '\0';
            for (char *c = out; *c; c++)
                if (*c == '+')
                    *c = ' ';
            MHD_http_unescape(out);
            return true;
        }
        p = stop + 1;
    }
    return false;
}

static void token_endpoint(fx_t *x)
{
    snprintf(x->audit_action, sizeof x->audit_action, "fhir token");
    const char *ct = fx_header(x, "Content-Type");
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
        oauth_error(x, 400, "invalid_request", "the body must be application/x-www-form-urlencoded");
        return;
    }
    const char *body = x->body ? x->body : "";
    char grant[64] = "", id[HX_API_CLIENT_MAX + 1] = "", secret[256] = "", scope[HX_API_SCOPES_MAX] = "";
    if (!form_value(body, x->len, "grant_type", grant, sizeof grant) || strcmp(grant, "client_credentials")) {
        oauth_error(x, 400, "unsupported_grant_type", "grant_type must be client_credentials");
        return;
    }
    /* the client: HTTP Basic, else client_id and client_secret in the body */
    char *user = NULL, *pass = NULL;
    user = MHD_basic_auth_get_username_password(x->conn, &pass);
    if (user && pass) {
        snprintf(id, sizeof id, "%s", user);
        snprintf(secret, sizeof secret, "%s", pass);
    } else {
        form_value(body, x->len, "client_id", id, sizeof id);
        form_value(body, x->len, "client_secret", secret, sizeof secret);
    }
    if (user)
        MHD_free(user);
    if (pass) {
        sodium_memzero(pass, strlen(pass));
        MHD_free(pass);
    }
    if (!id[0] || !secret[0]) {
        oauth_error(x, 401, "invalid_client", "client_id and client_secret are required (HTTP Basic or the body)");
        return;
    }
    bool asked = form_value(body, x->len, "scope", scope, sizeof scope);
    char token[HX_TOKEN_LEN + 1], why[200] = "";
    hx_api_client_t g;
    pthread_mutex_lock(&x->w->lock);
    hx_api_token_rc_t rc = hx_api_token(x->w->accounts, id, secret, asked ? scope : NULL, token, &g, why, sizeof why);
    pthread_mutex_unlock(&x->w->lock);
    sodium_memzero(secret, sizeof secret);
    snprintf(x->grant.id, sizeof x->grant.id, "%s", id);
    switch (rc) {
    case HX_API_TOKEN_OK:
        x->grant = g;
        x->status = 200;
        x->content_type = "application/json";
        x->out = json_pack("{s:s,s:s,s:i,s:s}", "access_token", token, "token_type", "bearer", "expires_in",
                           (int)HX_API_TOKEN_S, "scope", g.scopes);
        sodium_memzero(token, sizeof token);
        x->w->fhir_tokens++;
        snprintf(x->audit_detail, sizeof x->audit_detail, "granted %.140s", g.scopes);
        return;
    case HX_API_TOKEN_REFUSED:
        oauth_error(x, 401, "invalid_client", "the client id or its secret is not right, or the client is disabled");
        return;
    case HX_API_TOKEN_HELD:
        oauth_error(x, 429, "invalid_client", "too many wrong secrets for this client: wait 5 minutes");
        return;
    case HX_API_TOKEN_SCOPE:
        oauth_error(x, 400, "invalid_scope", why[0] ? why : "a scope asked for is not one this client may have");
        return;
    default:
        oauth_error(x, 500, "server_error", "the accounts store failed; try again");
        return;
    }
}

/* ---- the CapabilityStatement ---- */

typedef struct {
    const char *type;
    const char *interactions;       /* "read search-type update create delete" */
    const char *params;             /* "name:type ..." */
    const char *includes;           /* "Task:based-on ..." */
} cap_res_t;

static const cap_res_t cap_res[] = {
    {"ServiceRequest", "read search-type",
     "requester:reference status:token identifier:token patient:reference subject:reference priority:token "
     "authored:date",
     "ServiceRequest:subject ServiceRequest:requester ServiceRequest:performer"},
    {"Task", "read search-type update patch",
     "owner:reference status:token part-of:reference based-on:reference patient:reference code:token "
     "business-status:token",
     "Task:based-on Task:owner Task:part-of Task:patient Task:focus"},
    {"Communication", "read search-type create", "based-on:reference part-of:reference category:token sender:reference",
     "Communication:based-on Communication:sender"},
    {"Patient", "read search-type", "identifier:token name:string", ""},
    {"Practitioner", "read search-type", "identifier:token name:string", ""},
    {"PractitionerRole", "read search-type", "identifier:token name:string organization:reference specialty:token",
     "PractitionerRole:practitioner PractitionerRole:organization PractitionerRole:location"},
    {"Organization", "read search-type", "identifier:token name:string", ""},
    {"Location", "read search-type", "identifier:token name:string", ""},
    {"Appointment", "read search-type", "based-on:reference actor:reference status:token date:date",
     "Appointment:actor Appointment:based-on"},
    {"DocumentReference", "read search-type", "related:reference subject:reference", "DocumentReference:subject"},
    {"Binary", "read", "", ""},
    {"Subscription", "read search-type create update delete", "", ""},
};

static json_t *words_array(const char *words, const char *key, bool split_colon)
{
    json_t *a = json_array();
    char buf[512];
    snprintf(buf, sizeof buf, "%s", words);
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (split_colon) {
            char *c = strchr(t, ':');
            if (!c)
                continue;
            *c = '\0';
            json_array_append_new(a, json_pack("{s:s,s:s}", "name", t, "type", c + 1));
        } else if (key) {
            json_array_append_new(a, json_pack("{s:s}", key, t));
        } else {
            json_array_append_new(a, json_string(t));
        }
    }
    return a;
}

static json_t *capability(const fx_t *x)
{
    json_t *res = json_array();
    for (size_t i = 0; i < sizeof cap_res / sizeof cap_res[0]; i++) {
        const cap_res_t *c = &cap_res[i];
        json_t *r = json_pack("{s:s,s:o,s:b,s:b,s:s}", "type", c->type, "interaction",
                              words_array(c->interactions, "code", false), "readHistory", 0, "updateCreate", 0,
                              "versioning", "versioned");
        json_t *params = words_array(c->params, NULL, true);
        json_array_append_new(params, json_pack("{s:s,s:s}", "name", "_id", "type", "token"));
        json_array_append_new(params, json_pack("{s:s,s:s}", "name", "_lastUpdated", "type", "date"));
        if (strcmp(c->type, "Binary") && strcmp(c->type, "Subscription"))
            json_object_set_new(r, "searchParam", params);
        else
            json_decref(params);
        if (c->includes[0])
            json_object_set_new(r, "searchInclude", words_array(c->includes, NULL, false));
        if (!strcmp(c->type, "ServiceRequest")) {
            json_object_set_new(r, "conditionalCreate", json_true());
            json_object_set_new(r, "documentation",
                                json_string("Created by a transaction Bundle (ServiceRequest, Patient, "
                                            "PractitionerRole, Practitioner, DocumentReference) with "
                                            "request.ifNoneExist identifier=urn:handoff:ref|REF: sending it "
                                            "again is safe. docs/FHIR.md."));
        }
        if (!strcmp(c->type, "Task"))
            json_object_set_new(r, "documentation",
                                json_string("PUT or PATCH (JSON Patch) status/businessStatus/statusReason/"
                                            "output/owner: accept, decline (rejected + statusReason), start, "
                                            "complete (output valueString = summary), fail, redirect (owner), "
                                            "revoke (the parent Task, cancelled)."));
        json_array_append_new(res, r);
    }
    json_t *security = json_pack(
        "{s:b,s:[{s:[{s:s,s:s}]}],s:s,s:[{s:s,s:[{s:s,s:s}]}]}", "cors", 0, "service", "coding", "system",
        "http://terminology.hl7.org/CodeSystem/restful-security-service", "code", "SMART-on-FHIR", "description",
        "OAuth 2.0 client credentials: POST the client id and secret to the token endpoint; send the access "
        "token as Authorization: Bearer. Scopes: SMART system scopes (system/Task.rs ...).",
        "extension", "url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension",
        "url", "token", "valueUri", "");
    /* the token endpoint's address */
    char token_url[600];
    snprintf(token_url, sizeof token_url, "%s/token", x->base);
    json_object_set_new(
        json_array_get(json_object_get(json_array_get(json_object_get(security, "extension"), 0), "extension"), 0),
        "valueUri", json_string(token_url));
    char date[32];
    hx_fhir_instant((uint64_t)time(NULL) * 1000u, date, sizeof date);
    json_t *topics = json_array();
    json_array_append_new(topics, json_pack("{s:s,s:s}", "url",
                                            "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                                            "capabilitystatement-subscriptiontopic-canonical",
                                            "valueCanonical", HX_FHIR_TOPIC_TASK));
    json_array_append_new(topics, json_pack("{s:s,s:s}", "url",
                                            "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                                            "capabilitystatement-subscriptiontopic-canonical",
                                            "valueCanonical", HX_FHIR_TOPIC_SERVICE_REQUEST));
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[s],s:{s:s},s:{s:s,s:s},s:[{s:s,s:o,s:o,s:[{s:s}],s:o}]}",
                     "resourceType", "CapabilityStatement", "status", "active", "date", date, "kind", "instance",
                     "fhirVersion", "4.0.1", "publisher", "Handoff", "description",
                     "The clinic network's FHIR R4 API: submit referrals (transaction Bundle), follow them, act on "
                     "handoffs (Task), post to the care thread (Communication), subscribe to changes (R4 backport "
                     "rest-hook). What a token can read is its clinic's own.",
                     "format", "application/fhir+json", "software", "name", "handoff-web", "implementation",
                     "description", "Handoff FHIR R4 API", "url", x->base, "rest", "mode", "server", "security",
                     security, "resource", res, "interaction", "code", "transaction", "extension",
                     topics);
}

/* ---- read and search ---- */

typedef struct {
    hx_fhir_param_t p[64];
    size_t n;
    bool too_many;
    long count, offset;
    const char *count_s, *offset_s;
    const char *format;
} query_t;

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    query_t *q = cls;
    if (!strcmp(key, "_count"))
        q->count_s = value ? value : "";
    else if (!strcmp(key, "_offset"))
        q->offset_s = value ? value : "";
    else if (!strcmp(key, "_format"))
        q->format = value ? value : "";
    else if (q->n < sizeof q->p / sizeof q->p[0])
        q->p[q->n++] = (hx_fhir_param_t){key, value ? value : ""};
    else
        q->too_many = true;
    return MHD_YES;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* The URL of a search page: the type, the parameters as asked, _count and _offset. */
static void page_url(const fx_t *x, const char *type, const query_t *q, long offset, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s/%s?", x->base, type);
    for (size_t i = 0; i < q->n && n < cap; i++) {
        /* names and values escaped as a URL query needs */
        n += (size_t)snprintf(out + n, cap - n, "%s=", q->p[i].name);
        for (const unsigned char *c = (const unsigned char *)q->p[i].value; *c && n + 4 < cap; c++) {
            if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
                strchr("-._~:/", *c))
                out[n++] = (char)*c;
            else
                n += (size_t)snprintf(out + n, cap - n, "%%%02X", *c);
        }
        if (n < cap)
            n += (size_t)snprintf(out + n, cap - n, "&");
    }
    if (n < cap)
        snprintf(out + n, cap - n, "_count=%ld&_offset=%ld", q->count, offset);
}

static json_t *entry(const fx_t *x, json_t *res, const char *mode)
{
    char url[700];
    snprintf(url, sizeof url, "%s/%s/%s", x->base, json_string_value(json_object_get(res, "resourceType")),
             json_string_value(json_object_get(res, "id")));
    return json_pack("{s:s,s:O,s:{s:s}}", "fullUrl", url, "resource", res, "search", "mode", mode);
}

static void subscription_search(fx_t *x);

static void search(fx_t *x, hx_fhir_type_t t, const char *type)
{
    query_t q = {.count = WEB_FHIR_PAGE};
    MHD_get_connection_values(x->conn, MHD_GET_ARGUMENT_KIND, on_arg, &q);
    if (q.too_many) {
        fx_fail(x, 400, "too-costly", "too many search parameters (at most 64)", NULL);
        return;
    }
    if (q.count_s && !parse_long(q.count_s, 0, WEB_FHIR_PAGE_MAX, &q.count)) {
        fx_fail(x, 400, "invalid", "_count must be a whole number from 0 to 200", "_count");
        return;
    }
    if (q.offset_s && !parse_long(q.offset_s, 0, 100000000, &q.offset)) {
        fx_fail(x, 400, "invalid", "_offset must be a whole number from 0", "_offset");
        return;
    }
    hx_fhir_view_t *v = fx_view(x);
    if (!v)
        return;
    json_t *matches = NULL, *included = NULL, *oo = NULL;
    if (hx_fhir_search(v, t, q.p, q.n, &matches, &included, &oo) != 0) {
        hx_fhir_view_destroy(&v);
        fx_fail_oo(x, 400, oo);
        return;
    }
    hx_fhir_view_destroy(&v);
    size_t total = json_array_size(matches);
    json_t *entries = json_array();
    size_t from = (size_t)q.offset, to = from + (size_t)q.count;
    if (to > total)
        to = total;
    /* an included resource comes with the page whose matches name it: the whole set is
     * small enough to hand out with each page that has a match */
    for (size_t i = from; i < to; i++)
        json_array_append_new(entries, entry(x, json_array_get(matches, i), "match"));
    if (from < to) {
        size_t k;
        json_t *inc;
        json_array_foreach(included, k, inc) json_array_append_new(entries, entry(x, inc, "include"));
    }
    char self[2048], next[2048], prev[2048];
    page_url(x, type, &q, q.offset, self, sizeof self);
    json_t *links = json_pack("[{s:s,s:s}]", "relation", "self", "url", self);
    if (to < total && q.count > 0) {
        page_url(x, type, &q, (long)to, next, sizeof next);
        json_array_append_new(links, json_pack("{s:s,s:s}", "relation", "next", "url", next));
    }
    if (q.offset > 0) {
        long p = q.offset - q.count;
        page_url(x, type, &q, p < 0 ? 0 : p, prev, sizeof prev);
        json_array_append_new(links, json_pack("{s:s,s:s}", "relation", "previous", "url", prev));
    }
    char id[33], now[32];
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(id, sizeof id, raw, sizeof raw);
    hx_fhir_instant((uint64_t)time(NULL) * 1000u, now, sizeof now);
    json_t *b = json_pack("{s:s,s:s,s:{s:s},s:s,s:I,s:o}", "resourceType", "Bundle", "id", id, "meta", "lastUpdated",
                          now, "type", "searchset", "total", (json_int_t)total, "link", links);
    if (json_array_size(entries))
        json_object_set_new(b, "entry", entries);
    else
        json_decref(entries);
    json_decref(matches);
    json_decref(included);
    x->status = 200;
    x->out = b;
    snprintf(x->audit_detail, sizeof x->audit_detail, "%zu of %zu", to > from ? to - from : 0, total);
}

static void read_one(fx_t *x, hx_fhir_type_t t, const char *id)
{
    char rid[HX_REFERRAL_ID_LEN + 1];
    hx_fhir_view_t *v = fx_view_of(x, web_fhir_referral_of(t, id, rid) ? rid : NULL);
    if (!v)
        return;
    json_t *res = hx_fhir_view_read(v, t, id);
    hx_fhir_view_destroy(&v);
    if (!res) {
        char why[200];
        snprintf(why, sizeof why, "%s/%s: there is none this clinic may read", hx_fhir_type_name(t), id);
        fx_fail(x, 404, "not-found", why, NULL);
        return;
    }
    /* a referral's resources carry its id: the audit line names it */
    if (!strncmp(id, "R-", 2))
        snprintf(x->audit_rid, sizeof x->audit_rid, "%.18s", id);
    fx_resource(x, 200, res);
}

/* ---- routing ---- */

static bool authorize(fx_t *x)
{
    const char *auth = fx_header(x, "Authorization");
    snprintf(x->www_authenticate, sizeof x->www_authenticate, "Bearer realm=\"handoff\"");
    if (!auth || strncasecmp(auth, "Bearer ", 7)) {
        fx_fail(x, 401, "login", "an access token is required: Authorization: Bearer TOKEN (POST /fhir/r4/token)",
                NULL);
        return false;
    }
    const char *token = auth + 7;
    while (*token == ' ')
        token++;
    pthread_mutex_lock(&x->w->lock);
    int rc = strlen(token) == HX_TOKEN_LEN ? hx_api_token_check(x->w->accounts, token, &x->grant) : -1;
    pthread_mutex_unlock(&x->w->lock);
    if (rc != 0) {
        snprintf(x->www_authenticate, sizeof x->www_authenticate,
                 "Bearer realm=\"handoff\", error=\"invalid_token\"");
        fx_fail(x, 401, "login", "the access token is unknown or expired: ask the token endpoint for a new one", NULL);
        return false;
    }
    x->www_authenticate[0] = '\0';
    x->h = web_hosted_find(x->w, x->grant.clinic, false);
    if (!x->h) {
        fx_fail(x, 503, "transient", "this token's clinic is not hosted by this server", NULL);
        return false;
    }
    return true;
}

static bool accept_ok(fx_t *x)
{
    const char *fmt = MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, "_format");
    if (fmt && strcmp(fmt, "json") && strcmp(fmt, "application/fhir+json") && strcmp(fmt, "application/json")) {
        fx_fail(x, 406, "not-supported", "only JSON is served (_format=json)", "_format");
        return false;
    }
    const char *acc = fx_header(x, "Accept");
    if (acc && !strstr(acc, "json") && !strstr(acc, "*/*")) {
        fx_fail(x, 406, "not-supported", "only application/fhir+json is served", NULL);
        return false;
    }
    return true;
}

static bool content_ok(fx_t *x, bool patch)
{
    const char *ct = fx_header(x, "Content-Type");
    if (patch) {
        if (ct && !strncasecmp(ct, "application/json-patch+json", 27))
            return true;
        fx_fail(x, 415, "not-supported", "a PATCH body must be a JSON Patch: application/json-patch+json", NULL);
        return false;
    }
    if (ct && (!strncasecmp(ct, "application/fhir+json", 21) || !strncasecmp(ct, "application/json", 16)))
        return true;
    fx_fail(x, 415, "not-supported", "the body must be application/fhir+json", NULL);
    return false;
}

static void route(fx_t *x)
{
    const char *rest = x->url + strlen(FHIR_PREFIX);
    if (*rest == '/')
        rest++;
    char parts[3][128] = {"", "", ""};
    size_t np = 0;
    for (const char *p = rest; *p && np < 4;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (np == 3 || n >= sizeof parts[0]) {
            fx_fail(x, 404, "not-found", "no such path in this API", NULL);
            return;
        }
        memcpy(parts[np], p, n);
        parts[np++][n] = '\0';
        p += n;
        if (*p == '/')
            p++;
    }
    const char *m = x->method;
    bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    snprintf(x->audit_action, sizeof x->audit_action, "fhir %.8s %.40s%s", m, np ? parts[0] : "", np > 1 ? "/id" : "");
    if (np == 1 && !strcmp(parts[0], "metadata") && get) {
        x->status = 200;
        x->out = capability(x);
        return;
    }
    if (np == 2 && !strcmp(parts[0], ".well-known") && !strcmp(parts[1], "smart-configuration") && get) {
        char token_url[600];
        snprintf(token_url, sizeof token_url, "%s/token", x->base);
        x->status = 200;
        x->content_type = "application/json";
        x->out = json_pack("{s:s,s:[s],s:[s,s],s:[s],s:[s,s,s]}", "token_endpoint", token_url,
                           "grant_types_supported", "client_credentials", "token_endpoint_auth_methods_supported",
                           "client_secret_basic", "client_secret_post", "scopes_supported", "system/*.rs",
                           "capabilities", "client-confidential-symmetric", "permission-v1", "permission-v2");
        return;
    }
    if (np == 1 && !strcmp(parts[0], "token")) {
        if (strcmp(m, "POST")) {
            oauth_error(x, 405, "invalid_request", "the token endpoint takes POST");
            return;
        }
        token_endpoint(x);
        return;
    }
    if (!accept_ok(x) || !authorize(x))
        return;
    if (np == 0) {
        if (strcmp(m, "POST")) {
            fx_fail(x, 405, "not-supported", "the base takes POST of a transaction Bundle only", NULL);
            return;
        }
        if (content_ok(x, false) && fx_allowed(x, "ServiceRequest", 'c'))
            fx_submit(x);
        return;
    }
    if (!strcmp(parts[0], "Subscription")) {
        if (np > 2) {
            fx_fail(x, 404, "not-found", "no such path in this API", NULL);
            return;
        }
        if (np == 1 && get) {
            if (fx_allowed(x, "Subscription", 's'))
                subscription_search(x);
            return;
        }
        fx_subscription(x, np == 2 ? parts[1] : NULL);
        return;
    }
    hx_fhir_type_t t = hx_fhir_type_from_name(parts[0]);
    if (t == HX_FHIR_TYPE_COUNT) {
        char why[200];
        snprintf(why, sizeof why, "%s: not a resource type this API serves (see /fhir/r4/metadata)", parts[0]);
        fx_fail(x, 404, "not-supported", why, NULL);
        return;
    }
    if (np == 3 || (np == 2 && !hx_fhir_id_valid(parts[1]) && strcmp(parts[1], "_search"))) {
        fx_fail(x, 404, "not-found", "not a resource id: [A-Za-z0-9-.]{1,64}", NULL);
        return;
    }
    if (np == 1 && get) {
        if (t != HX_FHIR_BINARY && fx_allowed(x, parts[0], 's'))
            search(x, t, parts[0]);
        else if (t == HX_FHIR_BINARY)
            fx_fail(x, 405, "not-supported", "Binary is read by id only", NULL);
        return;
    }
    if (np == 2 && get) {
        if (fx_allowed(x, parts[0], 'r'))
            read_one(x, t, parts[1]);
        return;
    }
    if (np == 1 && !strcmp(m, "POST") && t == HX_FHIR_COMMUNICATION) {
        if (content_ok(x, false) && fx_allowed(x, "Communication", 'c'))
            fx_communication_create(x);
        return;
    }
    if (np == 2 && t == HX_FHIR_TASK && (!strcmp(m, "PUT") || !strcmp(m, "PATCH"))) {
        bool patch = !strcmp(m, "PATCH");
        if (content_ok(x, patch) && fx_allowed(x, "Task", 'u'))
            fx_task_update(x, parts[1], patch);
        return;
    }
    if (np == 1 && !strcmp(m, "POST") && t == HX_FHIR_SERVICE_REQUEST) {
        fx_fail(x, 405, "not-supported",
                "a referral is submitted as a transaction Bundle POSTed to the base (ServiceRequest with its "
                "Patient and requester)",
                NULL);
        return;
    }
    char why[200];
    snprintf(why, sizeof why, "%s on %s%s is not supported (see /fhir/r4/metadata)", m, parts[0],
             np == 2 ? "/id" : "");
    fx_fail(x, 405, "not-supported", why, NULL);
}

/* ---- subscriptions: the search (the rest is web_fhir_write.c's) ---- */

typedef struct {
    fx_t *x;
    json_t *entries;
} sub_list_t;

static void on_sub(void *ud, const hx_api_sub_t *s)
{
    sub_list_t *l = ud;
    json_t *r = hx_fhir_subscription_json(&s->sub);
    if (r) {
        json_array_append_new(l->entries, entry(l->x, r, "match"));
        json_decref(r);
    }
}

static void subscription_search(fx_t *x)
{
    sub_list_t l = {x, json_array()};
    pthread_mutex_lock(&x->w->lock);
    int rc = hx_api_sub_each(x->w->accounts, x->grant.clinic, on_sub, &l);
    pthread_mutex_unlock(&x->w->lock);
    if (rc != 0) {
        json_decref(l.entries);
        fx_fail(x, 500, "exception", "the subscriptions could not be read; try again", NULL);
        return;
    }
    char self[700];
    snprintf(self, sizeof self, "%s/Subscription", x->base);
    json_t *b = json_pack("{s:s,s:s,s:I,s:[{s:s,s:s}]}", "resourceType", "Bundle", "type", "searchset", "total",
                          (json_int_t)json_array_size(l.entries), "link", "relation", "self", "url", self);
    if (json_array_size(l.entries))
        json_object_set_new(b, "entry", l.entries);
    else
        json_decref(l.entries);
    x->status = 200;
    x->out = b;
}

/* ---- the request ---- */

static void base_url(fx_t *x)
{
    const char *pub = x->w->cfg.public_url;
    if (pub && *pub) {
        size_t n = strlen(pub);
        while (n && pub[n - 1] == '/')
            n--;
        snprintf(x->base, sizeof x->base, "%.*s%s", (int)n, pub, FHIR_PREFIX);
        return;
    }
    /* the Host the client used, when it is a plain host[:port]; else the listening address */
    const char *host = fx_header(x, "Host");
    bool plain = host && *host && strlen(host) < 200;
    for (const char *c = host; plain && *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr(".-:[]", *c)))
            plain = false;
    snprintf(x->base, sizeof x->base, "%s://%s%s", x->w->cfg.secure_cookies ? "https" : "http",
             plain ? host : x->w->cfg.listen, FHIR_PREFIX);
}

static void add_header(struct MHD_Response *res, const char *name, const char *value)
{
    if (value && *value)
        MHD_add_response_header(res, name, value);
}

struct MHD_Response *web_fhir_request(web_t *w, struct MHD_Connection *conn, const char *method, const char *url,
                                      const char *body, size_t len, const char *address, int *status)
{
    w->fhir_requests++;
    fx_t x = {.w = w, .conn = conn, .method = method, .url = url, .address = address, .body = body, .len = len,
              .status = 500};
    base_url(&x);
    if (len > WEB_FHIR_BODY_MAX)
        fx_fail(&x, 413, "too-costly", "the body is larger than this API takes (4 MiB)", NULL);
    else
        route(&x);
    if (!x.out)
        x.out = hx_fhir_outcome("error", "exception", "nothing could be answered", NULL);
    char *text = x.status == 204 ? NULL : json_dumps(x.out, JSON_COMPACT);
    json_decref(x.out);
    struct MHD_Response *res = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
                                    : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!res) {
        free(text);
        *status = 500;
        return NULL;
    }
    add_header(res, "Content-Type", x.content_type ? x.content_type : "application/fhir+json; charset=utf-8");
    add_header(res, "Cache-Control", "no-store");
    add_header(res, "X-Content-Type-Options", "nosniff");
    add_header(res, "Location", x.location);
    add_header(res, "Content-Location", x.status == 201 ? x.location : NULL);
    add_header(res, "ETag", x.etag);
    add_header(res, "Last-Modified", x.last_modified);
    add_header(res, "WWW-Authenticate", x.www_authenticate);
    /* one audit line per request: the client, its clinic, what it did, which referral; never a
     * query or a body (patient data) */
    if (w->accounts && x.audit_action[0]) {
        char user[HX_API_CLIENT_MAX + 8];
        snprintf(user, sizeof user, "api:%s", x.grant.id[0] ? x.grant.id : "-");
        if (!x.audit_detail[0])
            snprintf(x.audit_detail, sizeof x.audit_detail, "%d", x.status);
        hx_audit_t a = {.user = user, .clinic = x.grant.clinic, .action = x.audit_action,
                        .referral_id = x.audit_rid, .detail = x.audit_detail, .address = address};
        pthread_mutex_lock(&w->lock);
        hx_audit(w->accounts, &a);
        pthread_mutex_unlock(&w->lock);
    }
    fprintf(stderr, "handoff-web: %s %s %d%s%s\n", method, url, x.status, x.grant.id[0] ? " client=" : "",
            x.grant.id);
    *status = x.status;
    return res;
}
