/* handoff-web's insides, shared by its files (not a library interface).
 *
 *   web_server.c   libmicrohttpd: requests, forms, cookies, sessions, CSRF, headers, routing
 *   web_hosted.c   the hosted clinics: each its own key, broker session and local store
 *                  (hx_clinic), kept in sync by a thread, with a version that live pages follow
 *   web_pages.c    the pages: login, inbox, referral, referral form, admin, review queue, notices
 *   web_glance.c   the network at a glance: scheduling's figures as server-drawn SVG charts
 *   web_totp.c     the second factor's page: enrolment (key, otpauth:// URI, QR code) or the code
 *   web_notify.c   e-mail notices: queued in the accounts store's outbox, sent over SMTP by a thread
 *   web_static.c   the stylesheet and the small script (no build step)
 *   web_main.c     options, `handoff-web serve`, `handoff-web user ...`
 *
 * Threads: one per connection (a live page's event stream waits on its clinic). The accounts
 * store is behind web->lock; each hosted clinic behind its own mutex. The notices' sender has
 * a handle of its own on the accounts store, behind its own mutex (web_notify.c). */
#ifndef HX_WEB_H
#define HX_WEB_H
#include "hx_accounts.h"
#include "hx_clinic.h"
#include "hx_html.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define WEB_CLINICS_MAX 64
#define WEB_FIELDS_MAX 48
#define WEB_BODY_MAX (400u * 1024u)     /* a form with an attachment of up to 256 KiB */
#define WEB_IMPORT_MAX (16u * 1024u * 1024u)    /* an import file */

typedef struct {
    char id[32];
    char key_path[512];
    char public_key[41];            /* Z85: its fingerprint on the admin page */
    bool reviewer;                  /* a reviewer's mailbox, not a clinic's */
    hx_clinic_t *clinic;
    pthread_mutex_t mu;             /* the clinic handle and its store */
    pthread_cond_t changed;         /* broadcast when version moves */
    uint64_t version;               /* under mu: moves with each message stored */
    char last_error[256];           /* under mu: the last sync's failure ("" when it worked) */
    bool connected;
} web_hosted_t;

typedef struct {
    const char *listen;             /* HOST:PORT */
    const char *accounts;           /* the accounts store */
    const char *home;               /* the hosted clinics' stores */
    const char *broker, *server_key;
    const char *public_url;         /* links in e-mail notices */
    const char *smtp_url, *smtp_from;   /* e-mail notices (web_notify.h); smtp_url NULL: none */
    bool smtp_starttls;             /* smtp://: STARTTLS required */
    uint32_t smtp_retry_ms;         /* a failed notice is tried again after this, doubling */
    bool secure_cookies;            /* behind TLS: cookies marked Secure */
    uint32_t idle_s, sync_ms, wait_ms;
    int login_per_address;          /* failed logins from one address in a window before it is held */
    bool behind_proxy;              /* the client's address is the last of X-Forwarded-For */
    /* the FHIR API (web_fhir.h) */
    const char *directory;          /* scheduling's directory file: Organization, Location,
                                       Practitioner(Role); NULL: only what messages name */
    bool fhir_http_hooks;           /* subscriptions may deliver to http:// endpoints */
    uint32_t fhir_retry_ms;         /* a failed delivery is tried again after this, doubling */
    uint32_t fhir_retry_max_ms;     /* ... up to this */
    /* the hosted clinics' stores are sealed with keys derived from this one
     * (hx_clinic_store_subkey); NULL: each store's own HOME/ID.store.key */
    const char *data_key;
    const uint8_t *data_key_bytes;  /* its 32 bytes */
} web_config_t;

typedef struct web web_t;

struct web {
    web_config_t cfg;
    hx_accounts_t *accounts;
    struct hx_metrics *store_metrics;   /* the accounts store's figures (hx_db_metrics), under lock */
    pthread_mutex_t lock;           /* accounts */
    web_hosted_t hosted[WEB_CLINICS_MAX];
    size_t n_hosted;
    pthread_t syncer;
    struct web_notify *notify;      /* e-mail notices; NULL when they are off */
    struct hx_directory *dir;       /* cfg.directory loaded; NULL without one */
    struct web_fhir_notify *fhir_notify;    /* subscriptions' deliveries (web_fhir_notify.c) */
    atomic_bool stop;
    struct MHD_Daemon *mhd;
    int port;
    /* per-address login throttling */
    struct {
        char addr[64];
        uint32_t failures;
        uint64_t window_start_ms, held_until_ms;
    } addr_fail[256];
    pthread_mutex_t addr_lock;
    /* counters for /metrics */
    atomic_ullong requests, pages, logins_ok, logins_refused, logins_held, csrf_refused, denied, actions;
    atomic_ullong fhir_requests, fhir_refused, fhir_tokens, fhir_notified, fhir_notify_failed;
};

/* A form field (urlencoded or multipart). */
typedef struct {
    char *key, *value;
    size_t len;
    char *filename;                 /* multipart file part */
} web_field_t;

/* One request as the pages see it. */
typedef struct {
    web_t *web;
    const char *method, *path, *address;
    struct MHD_Connection *conn;
    hx_user_t user;
    bool signed_in;
    char session[HX_TOKEN_LEN + 1];
    char csrf[HX_TOKEN_LEN + 1];
    web_hosted_t *hosted;           /* the user's clinic (or reviewer mailbox), NULL for none */
    web_field_t *fields;
    size_t n_fields;
    /* the answer */
    int status;
    hx_html_t body;
    const char *content_type;
    char location[512];             /* a redirect */
    char set_cookie[256];
    char set_cookie2[256];          /* a second cookie: the pending sign-in's (hx_pending) */
    char disposition[256];          /* an attachment's Content-Disposition */
    bool cacheable;                 /* static files only */
    unsigned refresh_s;             /* > 0: the page asks again after this long (without script) */
    /* binary body instead of body (attachment download): malloc'd, freed by the server */
    uint8_t *blob;
    size_t blob_len;
} web_req_t;

/* ---- web_server.c ---- */
int web_start(web_t *w, char *err, size_t cap);
void web_stop(web_t *w);
/* A form field's value (NULL when absent); for files, len says how long. */
const char *web_field(const web_req_t *r, const char *key);
const web_field_t *web_field_full(const web_req_t *r, const char *key);
/* A query argument of the URL (NULL when absent). */
const char *web_arg(const web_req_t *r, const char *key);
void web_redirect(web_req_t *r, const char *location);
/* Audits one line for the request's user. */
void web_audit(web_req_t *r, const char *action, const char *referral_id, const char *detail);

/* ---- web_hosted.c ---- */
int web_hosted_add(web_t *w, const char *spec, bool reviewer, char *err, size_t cap);
int web_hosted_open(web_t *w, char *err, size_t cap);
void web_hosted_close(web_t *w);
web_hosted_t *web_hosted_find(web_t *w, const char *id, bool reviewer);
/* Starts and stops the thread that syncs every hosted mailbox each sync_ms. */
int web_sync_start(web_t *w);
void web_sync_stop(web_t *w);
/* Waits on cv (mu held) for ms at most; clock is the one cv was made with (CLOCK_REALTIME
 * unless its attributes said CLOCK_MONOTONIC). */
void web_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu, clockid_t clock, uint64_t ms);
/* After an action: the version moves so live pages refresh. Called with h->mu held. */
void web_hosted_bump(web_hosted_t *h);

/* ---- web_pages.c ---- */
void page_login(web_req_t *r, const char *error);
void page_inbox(web_req_t *r);
void page_referral(web_req_t *r);
void page_action(web_req_t *r);
void page_post(web_req_t *r);
void page_attachment(web_req_t *r);
void page_new(web_req_t *r);
void page_admin(web_req_t *r);
/* The signed-in user's e-mail address and notices (GET shows, POST saves). */
void page_prefs(web_req_t *r);
void page_review(web_req_t *r);
void page_review_decide(web_req_t *r);
void page_error(web_req_t *r, int status, const char *title, const char *text);

/* ---- web_glance.c ---- */
/* The network at a glance (clinic and network admins): scheduling's NetworkStats as charts. */
void page_glance(web_req_t *r);

/* ---- web_import.c ---- */
void page_import(web_req_t *r);
/* After web->stop is set: waits for the import jobs (each ends after its chunk in hand). */
void web_import_stop(web_t *w);

/* ---- web_totp.c ---- */
/* The page of a pending sign-in: the new key to enrol (p->enrolling) or the code alone; csrf
 * is the pending sign-in's form token. */
void page_totp(web_req_t *r, const hx_pending_t *p, const char *csrf, const char *error);

/* ---- web_static.c ---- */
extern const char web_css[];
extern const char web_js[];

#endif
