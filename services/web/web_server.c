/* web_server — handoff-web's HTTP side on libmicrohttpd (see web.h): one thread per
 * connection; every request is checked for its session and, when it posts a form, for the
 * session's CSRF token before any page sees it; every answer carries the same strict headers
 * (no-store, a content security policy that admits only the portal's own script and style). */
#include "hx_metrics.h"
#include "web.h"
#include "web_fhir.h"
#include "web_notify.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    struct MHD_PostProcessor *pp;
    web_field_t fields[WEB_FIELDS_MAX];
    size_t n_fields;
    size_t total, limit;
    bool too_big, bad_form;
    /* the FHIR API (web_fhir.h): the raw body, not a form */
    bool fhir;
    char *raw;
    size_t raw_len;
} conn_ctx_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- forms ---------------------------------------------------------------------------- */

static enum MHD_Result form_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *content_type, const char *transfer_encoding, const char *data,
                                 uint64_t off, size_t size)
{
    (void)kind, (void)content_type, (void)transfer_encoding;
    conn_ctx_t *cx = cls;
    cx->total += size;
    if (cx->total > cx->limit) {
        cx->too_big = true;
        return MHD_NO;
    }
    web_field_t *f = NULL;
    if (off > 0 && cx->n_fields && !strcmp(cx->fields[cx->n_fields - 1].key, key))
        f = &cx->fields[cx->n_fields - 1];
    if (!f) {
        if (cx->n_fields == WEB_FIELDS_MAX) {
            cx->bad_form = true;
            return MHD_NO;
        }
        f = &cx->fields[cx->n_fields++];
        f->key = strdup(key ? key : "");
        f->filename = filename ? strdup(filename) : NULL;
        f->value = calloc(1, 1);
        f->len = 0;
        if (!f->key || !f->value || (filename && !f->filename)) {
            cx->bad_form = true;
            return MHD_NO;
        }
    }
    if (size) {
        char *grown = realloc(f->value, f->len + size + 1);
        if (!grown) {
            cx->bad_form = true;
            return MHD_NO;
        }
        memcpy(grown + f->len, data, size);
        f->len += size;
        grown[f->len] = '\0';
        f->value = grown;
    }
    return MHD_YES;
}

static void ctx_free(conn_ctx_t *cx)
{
    if (!cx)
        return;
    if (cx->pp)
        MHD_destroy_post_processor(cx->pp);
    for (size_t i = 0; i < cx->n_fields; i++) {
        free(cx->fields[i].key);
        free(cx->fields[i].value);
        free(cx->fields[i].filename);
    }
    free(cx->raw);
    free(cx);
}

const web_field_t *web_field_full(const web_req_t *r, const char *key)
{
    for (size_t i = 0; i < r->n_fields; i++)
        if (!strcmp(r->fields[i].key, key))
            return &r->fields[i];
    return NULL;
}

const char *web_field(const web_req_t *r, const char *key)
{
    const web_field_t *f = web_field_full(r, key);
    return f ? f->value : NULL;
}

const char *web_arg(const web_req_t *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

void web_redirect(web_req_t *r, const char *location)
{
    r->status = 303;
    snprintf(r->location, sizeof r->location, "%s", location);
}

void web_audit(web_req_t *r, const char *action, const char *referral_id, const char *detail)
{
    hx_audit_t e = {.user = r->user.name, .clinic = r->hosted ? r->hosted->id : r->user.clinic, .action = action,
                    .referral_id = referral_id, .detail = detail, .address = r->address};
    pthread_mutex_lock(&r->web->lock);
    int rc = hx_audit(r->web->accounts, &e);
    pthread_mutex_unlock(&r->web->lock);
    if (rc != 0)
        fprintf(stderr, "handoff-web: audit: could not record %s by %s\n", action, r->user.name);
}

/* ---- per-address login throttling --------------------------------------------------------- */

#define ADDR_WINDOW_MS (15u * 60u * 1000u)

static bool addr_held(web_t *w, const char *addr)
{
    uint64_t t = mono_ms();
    bool held = false;
    pthread_mutex_lock(&w->addr_lock);
    for (size_t i = 0; i < sizeof w->addr_fail / sizeof *w->addr_fail; i++)
        if (!strcmp(w->addr_fail[i].addr, addr))
            held = w->addr_fail[i].held_until_ms > t;
    pthread_mutex_unlock(&w->addr_lock);
    return held;
}

static void addr_failed(web_t *w, const char *addr)
{
    uint64_t t = mono_ms();
    size_t n = sizeof w->addr_fail / sizeof *w->addr_fail, slot = n, oldest = 0;
    pthread_mutex_lock(&w->addr_lock);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(w->addr_fail[i].addr, addr)) {
            slot = i;
            break;
        }
        if (w->addr_fail[i].window_start_ms < w->addr_fail[oldest].window_start_ms)
            oldest = i;
    }
    if (slot == n) {                    /* a new address takes the stalest entry */
        slot = oldest;
        memset(&w->addr_fail[slot], 0, sizeof w->addr_fail[slot]);
        snprintf(w->addr_fail[slot].addr, sizeof w->addr_fail[slot].addr, "%s", addr);
    }
    if (t - w->addr_fail[slot].window_start_ms > ADDR_WINDOW_MS) {
        w->addr_fail[slot].window_start_ms = t;
        w->addr_fail[slot].failures = 0;
    }
    if (++w->addr_fail[slot].failures >= (uint32_t)w->cfg.login_per_address)
        w->addr_fail[slot].held_until_ms = t + ADDR_WINDOW_MS;
    pthread_mutex_unlock(&w->addr_lock);
}

/* ---- sessions --------------------------------------------------------------------------- */

static void session_cookie(web_req_t *r, const char *token)
{
    snprintf(r->set_cookie, sizeof r->set_cookie, "hx_session=%s; Path=/; HttpOnly; SameSite=Strict%s%s",
             token ? token : "", token ? "" : "; Max-Age=0", r->web->cfg.secure_cookies ? "; Secure" : "");
}

/* The pending sign-in's cookie (token NULL: ended): only /login and /login/totp ever see it. */
static void pending_cookie(web_req_t *r, const char *token)
{
    snprintf(r->set_cookie2, sizeof r->set_cookie2,
             "hx_pending=%s; Path=/login; Max-Age=%d; HttpOnly; SameSite=Strict%s", token ? token : "",
             token ? HX_PENDING_S : 0, r->web->cfg.secure_cookies ? "; Secure" : "");
}

static void do_login(web_req_t *r)
{
    web_t *w = r->web;
    if (addr_held(w, r->address)) {
        w->logins_held++;
        r->status = 429;
        page_login(r, "Too many failed sign-ins from this address. Wait 15 minutes and try again.");
        return;
    }
    const char *name = web_field(r, "user"), *password = web_field(r, "password");
    char token[HX_TOKEN_LEN + 1];
    hx_user_t u;
    pthread_mutex_lock(&w->lock);
    hx_login_t rc = hx_login(w->accounts, name ? name : "", password ? password : "", token, &u);
    /* a session id from before the login never carries on (fixation): it is ended */
    if (rc == HX_LOGIN_OK && r->session[0])
        hx_logout(w->accounts, r->session);
    const char *before = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "hx_pending");
    if (before && (rc == HX_LOGIN_OK || rc == HX_LOGIN_TOTP))
        hx_pending_end(w->accounts, before);
    pthread_mutex_unlock(&w->lock);
    if (rc == HX_LOGIN_TOTP) {          /* the password was right: the code is next, no session yet */
        pending_cookie(r, token);
        sodium_memzero(token, sizeof token);
        web_redirect(r, "/login/totp");
        return;
    }
    if (rc == HX_LOGIN_OK) {
        w->logins_ok++;
        r->user = u;
        r->hosted = NULL;
        web_audit(r, "login", "", "");
        session_cookie(r, token);
        web_redirect(r, "/");
        return;
    }
    if (rc == HX_LOGIN_HELD) {
        w->logins_held++;
        r->status = 429;
        page_login(r, "This account is held after repeated failed sign-ins. Wait a few minutes and try again.");
        return;
    }
    w->logins_refused++;
    if (rc != HX_LOGIN_ERROR)           /* the store's failure is not the address's */
        addr_failed(w, r->address);
    r->status = rc == HX_LOGIN_ERROR ? 500 : 401;
    page_login(r, rc == HX_LOGIN_ERROR ? "The accounts store could not be read; try again."
                                       : "The user name or password is not right.");
}

/* The code as typed, spaces and dashes left out; "" when it is anything but those and digits. */
static void code_clean(const char *in, char out[HX_TOTP_DIGITS + 1])
{
    size_t n = 0;
    out[0] = '\0';
    if (!in || strlen(in) > 16)
        return;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        if (*p < '0' || *p > '9' || n == HX_TOTP_DIGITS) {
            n = 0;
            break;
        }
        out[n++] = *p;
    }
    out[n] = '\0';
}

/* GET and POST /login/totp: the second step of a sign-in, known by its pending cookie. Its form
 * carries the pending sign-in's token (hx_csrf_token of it); the cookie is SameSite=Strict. */
static void do_totp(web_req_t *r)
{
    web_t *w = r->web;
    bool post = !strcmp(r->method, "POST");
    const char *pending = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "hx_pending");
    hx_pending_t p;
    char csrf[HX_TOKEN_LEN + 1] = "", token[HX_TOKEN_LEN + 1] = "", code[HX_TOTP_DIGITS + 1];
    pthread_mutex_lock(&w->lock);
    int live = hx_pending(w->accounts, pending, &p);
    if (live == 0)
        hx_csrf_token(w->accounts, pending, csrf);
    pthread_mutex_unlock(&w->lock);
    if (live != 0) {
        pending_cookie(r, NULL);
        if (post || pending) {
            r->status = 401;
            page_login(r, "The sign-in was not finished within 5 minutes. Sign in again.");
        } else {
            web_redirect(r, "/login");
        }
        return;
    }
    if (!post) {
        page_totp(r, &p, csrf, NULL);
        goto done;
    }
    if (!hx_csrf_ok(w->accounts, pending, web_field(r, "csrf"))) {
        w->csrf_refused++;
        r->status = 403;
        page_totp(r, &p, csrf, "This form has expired: nothing was checked. Enter the code again.");
        goto done;
    }
    if (addr_held(w, r->address)) {
        w->logins_held++;
        r->status = 429;
        page_totp(r, &p, csrf, "Too many failed sign-ins from this address. Wait 15 minutes and try again.");
        goto done;
    }
    code_clean(web_field(r, "code"), code);
    hx_user_t u;
    pthread_mutex_lock(&w->lock);
    hx_login_t rc = hx_login_totp(w->accounts, pending, code, token, &u);
    if (rc == HX_LOGIN_OK && r->session[0])
        hx_logout(w->accounts, r->session);
    pthread_mutex_unlock(&w->lock);
    switch (rc) {
    case HX_LOGIN_OK:
        w->logins_ok++;
        r->user = u;
        r->hosted = NULL;
        if (p.enrolling)
            web_audit(r, "totp-enrolled", "", "");
        web_audit(r, "login", "", "two-step");
        session_cookie(r, token);
        pending_cookie(r, NULL);
        web_redirect(r, "/");
        break;
    case HX_LOGIN_REFUSED:
        w->logins_refused++;
        addr_failed(w, r->address);
        r->status = 401;
        page_totp(r, &p, csrf, "That code is not right, or it was used already. Enter the code your app shows now.");
        break;
    case HX_LOGIN_HELD:
        w->logins_held++;
        r->status = 429;
        pending_cookie(r, NULL);
        page_login(r, "This account is held after repeated failed sign-ins. Wait a few minutes and try again.");
        break;
    case HX_LOGIN_EXPIRED:
        r->status = 401;
        pending_cookie(r, NULL);
        page_login(r, "The sign-in was not finished within 5 minutes. Sign in again.");
        break;
    default:
        r->status = 500;
        page_totp(r, &p, csrf, "The accounts store could not be read; try again.");
        break;
    }
done:
    sodium_memzero(&p, sizeof p);
    sodium_memzero(token, sizeof token);
}

/* ---- the event stream of a live page ------------------------------------------------------ */

typedef struct {
    web_t *web;
    web_hosted_t *h;
    char token[HX_TOKEN_LEN + 1];
    uint64_t seen;
    bool ended;
} sse_t;

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_t *s = cls;
    if (s->ended || atomic_load(&s->web->stop))
        return MHD_CONTENT_READER_END_OF_STREAM;
    hx_user_t u;
    pthread_mutex_lock(&s->web->lock);
    int live = hx_session_peek(s->web->accounts, s->token, &u);
    pthread_mutex_unlock(&s->web->lock);
    if (live != 0) {                    /* signed out or timed out: the page goes to sign-in */
        s->ended = true;
        return snprintf(buf, max, "event: ended\ndata: signed out\n\n");
    }
    pthread_mutex_lock(&s->h->mu);
    if (s->h->version == s->seen && !atomic_load(&s->web->stop)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 15;
        pthread_cond_timedwait(&s->h->changed, &s->h->mu, &until);
    }
    uint64_t v = s->h->version;
    pthread_mutex_unlock(&s->h->mu);
    if (atomic_load(&s->web->stop))
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (v == s->seen)
        return snprintf(buf, max, ": still here\n\n");
    s->seen = v;
    return snprintf(buf, max, "event: change\ndata: %llu\n\n", (unsigned long long)v);
}

static struct MHD_Response *sse_response(web_req_t *r)
{
    sse_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->web = r->web;
    s->h = r->hosted;
    snprintf(s->token, sizeof s->token, "%s", r->session);
    pthread_mutex_lock(&r->hosted->mu);
    s->seen = r->hosted->version;
    pthread_mutex_unlock(&r->hosted->mu);
    const char *last = web_arg(r, "v");     /* the version the page was drawn at */
    if (last && *last)
        s->seen = strtoull(last, NULL, 10);
    struct MHD_Response *res = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256, sse_read, s, free);
    if (!res) {
        free(s);
        return NULL;
    }
    MHD_add_response_header(res, "Content-Type", "text/event-stream");
    MHD_add_response_header(res, "Cache-Control", "no-store");
    MHD_add_response_header(res, "X-Accel-Buffering", "no");
    return res;
}

/* ---- routing ------------------------------------------------------------------------------ */

static void metrics(web_req_t *r)
{
    web_t *w = r->web;
    r->content_type = "text/plain; version=0.0.4";
    HX_HTML_F(&r->body,
              "# HELP handoff_web_requests_total HTTP requests answered.\n"
              "# TYPE handoff_web_requests_total counter\nhandoff_web_requests_total %llu\n"
              "# HELP handoff_web_logins_total Sign-ins by result (held: the user or the address is held back).\n"
              "# TYPE handoff_web_logins_total counter\n"
              "handoff_web_logins_total{result=\"ok\"} %llu\nhandoff_web_logins_total{result=\"refused\"} %llu\n"
              "handoff_web_logins_total{result=\"held\"} %llu\n"
              "# HELP handoff_web_csrf_refused_total Forms refused for a missing or wrong CSRF token.\n"
              "# TYPE handoff_web_csrf_refused_total counter\nhandoff_web_csrf_refused_total %llu\n"
              "# HELP handoff_web_denied_total Pages or referrals refused to a signed-in user.\n"
              "# TYPE handoff_web_denied_total counter\nhandoff_web_denied_total %llu\n"
              "# HELP handoff_web_actions_total Actions, posts, referrals and imports sent.\n"
              "# TYPE handoff_web_actions_total counter\nhandoff_web_actions_total %llu\n",
              (unsigned long long)w->requests, (unsigned long long)w->logins_ok,
              (unsigned long long)w->logins_refused, (unsigned long long)w->logins_held,
              (unsigned long long)w->csrf_refused, (unsigned long long)w->denied, (unsigned long long)w->actions);
    HX_HTML_MARKUP(&r->body, "# HELP handoff_web_mailbox_up 1 when the hosted mailbox is in sync with the broker.\n"
                             "# TYPE handoff_web_mailbox_up gauge\n");
    for (size_t i = 0; i < w->n_hosted; i++) {
        web_hosted_t *h = &w->hosted[i];
        pthread_mutex_lock(&h->mu);
        int up = h->connected && !h->last_error[0];
        pthread_mutex_unlock(&h->mu);
        HX_HTML_F(&r->body, "handoff_web_mailbox_up{clinic=\"%s\"} %d\n", h->id, up);
    }
    web_notify_metrics(w, &r->body);
    if (w->store_metrics) {
        hx_buf_t text = {0};
        pthread_mutex_lock(&w->lock);
        int rc = hx_metrics_render(w->store_metrics, &text);
        pthread_mutex_unlock(&w->lock);
        if (rc == 0)
            hx_html_exposition(&r->body, (const char *)text.data, text.len);
        else
            r->body.failed = 1;
        hx_buf_free(&text);
    }
    HX_HTML_F(&r->body,
              "# HELP handoff_web_fhir_requests_total FHIR API requests answered.\n"
              "# TYPE handoff_web_fhir_requests_total counter\nhandoff_web_fhir_requests_total %llu\n"
              "# HELP handoff_web_fhir_refused_total FHIR API requests refused (an OperationOutcome or an OAuth error).\n"
              "# TYPE handoff_web_fhir_refused_total counter\nhandoff_web_fhir_refused_total %llu\n"
              "# HELP handoff_web_fhir_tokens_total Access tokens issued.\n"
              "# TYPE handoff_web_fhir_tokens_total counter\nhandoff_web_fhir_tokens_total %llu\n"
              "# HELP handoff_web_fhir_notifications_total Subscription notifications by result.\n"
              "# TYPE handoff_web_fhir_notifications_total counter\n"
              "handoff_web_fhir_notifications_total{result=\"delivered\"} %llu\n"
              "handoff_web_fhir_notifications_total{result=\"failed\"} %llu\n",
              (unsigned long long)w->fhir_requests, (unsigned long long)w->fhir_refused,
              (unsigned long long)w->fhir_tokens, (unsigned long long)w->fhir_notified,
              (unsigned long long)w->fhir_notify_failed);
}

static bool ready(web_t *w, char *why, size_t cap)
{
    char err[256];
    pthread_mutex_lock(&w->lock);
    int rc = hx_accounts_ready(w->accounts, err, sizeof err);
    pthread_mutex_unlock(&w->lock);
    if (rc != 0) {
        snprintf(why, cap, "the accounts store: %s", err);
        return false;
    }
    for (size_t i = 0; i < w->n_hosted; i++) {
        web_hosted_t *h = &w->hosted[i];
        pthread_mutex_lock(&h->mu);
        bool ok = h->connected && !h->last_error[0];
        if (!ok)
            snprintf(why, cap, "%s: %s", h->id, h->last_error[0] ? h->last_error : "not connected yet");
        pthread_mutex_unlock(&h->mu);
        if (!ok)
            return false;
    }
    return true;
}

/* Pages open without a session. */
static bool route_public(web_req_t *r)
{
    bool get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    if (get && !strcmp(r->path, "/static/app.css")) {
        r->content_type = "text/css; charset=utf-8";
        r->cacheable = true;
        hx_html_markup_(&r->body, web_css);
    } else if (get && !strcmp(r->path, "/static/app.js")) {
        r->content_type = "text/javascript; charset=utf-8";
        r->cacheable = true;
        hx_html_markup_(&r->body, web_js);
    } else if (get && !strcmp(r->path, "/favicon.ico")) {
        r->status = 204;                /* no icon: answered, not logged, not a sign-in redirect */
        r->cacheable = true;
    } else if (get && !strcmp(r->path, "/healthz")) {
        r->content_type = "text/plain";
        HX_HTML_MARKUP(&r->body, "ok\n");
    } else if (get && !strcmp(r->path, "/readyz")) {
        char why[300] = "";
        r->content_type = "text/plain";
        if (ready(r->web, why, sizeof why)) {
            HX_HTML_MARKUP(&r->body, "ready\n");
        } else {
            r->status = 503;
            HX_HTML_F(&r->body, "not ready: %s\n", why);
        }
    } else if (get && !strcmp(r->path, "/metrics")) {
        metrics(r);
    } else if (!strcmp(r->path, "/login/totp")) {
        do_totp(r);
    } else if (!strcmp(r->path, "/login")) {
        if (!strcmp(r->method, "POST"))
            do_login(r);
        else if (r->signed_in)
            web_redirect(r, "/");
        else
            page_login(r, NULL);
    } else {
        return false;
    }
    return true;
}

static void route(web_req_t *r)
{
    if (route_public(r))
        return;
    bool post = !strcmp(r->method, "POST");
    if (!r->signed_in) {
        if (post) {
            r->status = 401;
            page_login(r, "Your session has ended. Sign in again; what you sent was not kept.");
        } else {
            web_redirect(r, "/login");
        }
        return;
    }
    if (post && !hx_csrf_ok(r->web->accounts, r->session, web_field(r, "csrf"))) {
        r->web->csrf_refused++;
        page_error(r, 403, "This form has expired",
                   "The form did not carry this session's token, so nothing was done. Go back, reload the page "
                   "and send it again.");
        return;
    }
    const char *p = r->path;
    if (post && !strcmp(p, "/logout")) {
        pthread_mutex_lock(&r->web->lock);
        hx_logout(r->web->accounts, r->session);
        pthread_mutex_unlock(&r->web->lock);
        web_audit(r, "logout", "", "");
        session_cookie(r, NULL);
        web_redirect(r, "/login");
    } else if (!strcmp(p, "/")) {
        page_inbox(r);
    } else if (!strcmp(p, "/referral") && !post) {
        page_referral(r);
    } else if (!strcmp(p, "/referral/action") && post) {
        page_action(r);
    } else if (!strcmp(p, "/referral/post") && post) {
        page_post(r);
    } else if (!strcmp(p, "/attachment") && !post) {
        page_attachment(r);
    } else if (!strcmp(p, "/import")) {
        page_import(r);
    } else if (!strcmp(p, "/new")) {
        page_new(r);
    } else if (!strcmp(p, "/admin") && !post) {
        page_admin(r);
    } else if (!strcmp(p, "/glance") && !post) {
        page_glance(r);
    } else if (!strcmp(p, "/prefs")) {
        page_prefs(r);
    } else if (!strcmp(p, "/review") && !post) {
        page_review(r);
    } else if (!strcmp(p, "/review/decide") && post) {
        page_review_decide(r);
    } else {
        page_error(r, 404, "Not found", "There is no such page.");
    }
}

static void add_headers(struct MHD_Response *res, const web_req_t *r)
{
    MHD_add_response_header(res, "Content-Type", r->content_type ? r->content_type : "text/html; charset=utf-8");
    MHD_add_response_header(res, "Cache-Control", r->cacheable ? "max-age=300" : "no-store");
    MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(res, "X-Frame-Options", "DENY");
    MHD_add_response_header(res, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(res, "Content-Security-Policy",
                            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    if (r->set_cookie[0])
        MHD_add_response_header(res, "Set-Cookie", r->set_cookie);
    if (r->set_cookie2[0])
        MHD_add_response_header(res, "Set-Cookie", r->set_cookie2);
    if (r->location[0])
        MHD_add_response_header(res, "Location", r->location);
    if (r->disposition[0])
        MHD_add_response_header(res, "Content-Disposition", r->disposition);
}

static enum MHD_Result answer(struct MHD_Connection *conn, int status, struct MHD_Response *res)
{
    if (!res)
        return MHD_NO;
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, res);
    MHD_destroy_response(res);
    return rc;
}

static void client_address(struct MHD_Connection *conn, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)cap);
}

/* Behind the proxy: the last address of X-Forwarded-For (the one the proxy itself appended),
 * when it is an address; otherwise addr is left as the connection's. */
static void forwarded_address(struct MHD_Connection *conn, char *addr, size_t cap)
{
    const char *xff = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For");
    if (!xff)
        return;
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ' || *last == '\t')
        last++;
    char ip[64];
    size_t n = strcspn(last, " \t");
    if (n == 0 || n >= sizeof ip)
        return;
    memcpy(ip, last, n);
    ip[n] = '\0';
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1)
        snprintf(addr, cap, "%s", ip);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    web_t *w = cls;
    conn_ctx_t *cx = *con_cls;
    if (!cx) {
        if (!(cx = calloc(1, sizeof *cx)))
            return MHD_NO;
        *con_cls = cx;
        cx->limit = !strcmp(url, "/import") ? WEB_IMPORT_MAX : WEB_BODY_MAX;
        if ((cx->fhir = web_fhir_path(url)))
            return MHD_YES;
        if (!strcmp(method, "POST"))
            cx->pp = MHD_create_post_processor(conn, 32 * 1024, form_part, cx);
        return MHD_YES;
    }
    if (*upload_data_size && cx->fhir) {
        /* kept up to one byte past the limit: web_fhir_request refuses what is larger */
        size_t room = WEB_FHIR_BODY_MAX + 1 - cx->raw_len, n = *upload_data_size < room ? *upload_data_size : room;
        if (n) {
            char *grown = realloc(cx->raw, cx->raw_len + n + 1);
            if (!grown)
                return MHD_NO;
            cx->raw = grown;
            memcpy(cx->raw + cx->raw_len, upload_data, n);
            cx->raw_len += n;
            cx->raw[cx->raw_len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (cx->pp && !cx->too_big && !cx->bad_form)
            MHD_post_process(cx->pp, upload_data, *upload_data_size);
        else if (!cx->pp)
            cx->total += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    w->requests++;
    web_req_t r = {.web = w, .method = method, .path = url, .conn = conn, .status = 200,
                   .fields = cx->fields, .n_fields = cx->n_fields};
    char addr[64];
    client_address(conn, addr, sizeof addr);
    if (w->cfg.behind_proxy)
        forwarded_address(conn, addr, sizeof addr);
    r.address = addr;
    if (cx->fhir) {
        int status = 500;
        struct MHD_Response *res = web_fhir_request(w, conn, method, url, cx->raw, cx->raw_len, addr, &status);
        return answer(conn, status, res);
    }
    hx_html_init(&r.body);
    if (!strcmp(method, "POST") && (!cx->pp || cx->too_big || cx->bad_form)) {
        int code = cx->too_big ? 413 : 400;
        page_error(&r, code, cx->too_big ? "Too large" : "Not a form",
                   cx->too_big ? "What was sent is larger than a form may be (attachments: at most 256 KiB; "
                                 "import files: 16 MiB)."
                               : "The request was not a form this portal reads.");
        goto send;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "POST")) {
        page_error(&r, 405, "Not allowed", "This portal answers GET and POST only.");
        goto send;
    }
    const char *cookie = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "hx_session");
    if (cookie && strlen(cookie) == HX_TOKEN_LEN) {
        snprintf(r.session, sizeof r.session, "%s", cookie);
        pthread_mutex_lock(&w->lock);
        bool events = !strcmp(url, "/events");
        r.signed_in = (events ? hx_session_peek(w->accounts, r.session, &r.user)
                              : hx_session_user(w->accounts, r.session, &r.user)) == 0;
        if (r.signed_in)
            hx_csrf_token(w->accounts, r.session, r.csrf);
        pthread_mutex_unlock(&w->lock);
        if (r.signed_in)
            r.hosted = r.user.role == HX_USER_REVIEWER ? web_hosted_find(w, NULL, true)
                       : r.user.clinic[0]              ? web_hosted_find(w, r.user.clinic, false)
                                                       : NULL;
    }
    if (!strcmp(url, "/events") && !strcmp(method, "GET")) {
        if (!r.signed_in || !r.hosted) {
            page_error(&r, 401, "Signed out", "Sign in again.");
            goto send;
        }
        hx_html_free(&r.body);
        return answer(conn, 200, sse_response(&r));
    }
    route(&r);
send:;
    struct MHD_Response *res;
    if (r.body.failed) {
        hx_html_free(&r.body);
        hx_html_init(&r.body);
        r.status = 500;
        r.blob = NULL;
        HX_HTML_MARKUP(&r.body, "<!doctype html><title>Error</title><p>This page could not be written.</p>");
    }
    if (r.blob) {
        res = MHD_create_response_from_buffer(r.blob_len, r.blob, MHD_RESPMEM_MUST_FREE);
        r.blob = NULL;
    } else {
        res = MHD_create_response_from_buffer(r.body.len, r.body.data ? r.body.data : (char *)"",
                                              MHD_RESPMEM_MUST_COPY);
    }
    free(r.blob);
    if (res)
        add_headers(res, &r);
    /* one line per request: method, path (never a query or a form: no patient data), status, user */
    if (strcmp(url, "/healthz") && strcmp(url, "/readyz") && strcmp(url, "/metrics") && strncmp(url, "/static/", 8) &&
        strcmp(url, "/favicon.ico"))
        fprintf(stderr, "handoff-web: %s %s %d%s%s\n", method, url, r.status, r.signed_in ? " user=" : "",
                r.signed_in ? r.user.name : "");
    hx_html_free(&r.body);
    return answer(conn, r.status, res);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    ctx_free(*con_cls);
    *con_cls = NULL;
}

static int listen_addr(const char *listen, struct sockaddr_storage *ss, char *err, size_t cap)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, cap, "--listen: '%s' is not HOST:PORT", listen);
        return -1;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) {
        snprintf(err, cap, "--listen: port '%s' is not 0..65535", colon + 1);
        return -1;
    }
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, cap, "--listen: host '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    return 0;
}

int web_start(web_t *w, char *err, size_t cap)
{
    struct sockaddr_storage ss = {0};
    if (listen_addr(w->cfg.listen, &ss, err, cap) != 0)
        return -1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    w->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_END);
    if (!w->mhd) {
        snprintf(err, cap, "--listen %s: cannot listen there (in use, or not an address of this host)",
                 w->cfg.listen);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_BIND_PORT);
    w->port = di ? di->port : 0;
    return 0;
}

void web_stop(web_t *w)
{
    if (!w->mhd)
        return;
    atomic_store(&w->stop, true);
    for (size_t i = 0; i < w->n_hosted; i++) {     /* live pages' streams wake and end */
        pthread_mutex_lock(&w->hosted[i].mu);
        pthread_cond_broadcast(&w->hosted[i].changed);
        pthread_mutex_unlock(&w->hosted[i].mu);
    }
    MHD_stop_daemon(w->mhd);
    w->mhd = NULL;
}
