/* web_notify — e-mail notices of handoff-web (see web_notify.h): classify what a mailbox
 * brought, queue the notices in the accounts store's outbox, send them over SMTP with libcurl
 * from a thread of their own, and try again later when the mail server does not take them. */
#include "web_notify.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define URL_MAX 1024
#define PUBLIC_URL_MAX 200          /* the link's line stays under SMTP's 998 bytes */
#define WAIT_IDLE_MS 60000u         /* the sender looks at the outbox at least this often */
#define WAIT_ERROR_MS 5000u         /* after the store failed */

struct web_notify {
    hx_accounts_t *acc;             /* its own handle on the accounts store, under mu */
    pthread_mutex_t mu;
    pthread_cond_t wake;            /* a notice was queued, or stop (CLOCK_MONOTONIC) */
    bool stopping;                  /* under mu */
    atomic_bool abort_send;         /* read by a transfer in progress */
    pthread_t sender;
    char url[URL_MAX];              /* may carry credentials: never printed */
    char shown[URL_MAX];            /* scheme://host:port, for the log */
    char from[HX_EMAIL_MAX + 3];    /* <address>, for MAIL FROM */
    char from_addr[HX_EMAIL_MAX + 1];
    char from_domain[HX_EMAIL_MAX + 1];
    long use_ssl;                   /* CURLOPT_USE_SSL */
    hx_mail_retry_t retry;
    atomic_ullong queued, sent, retried, given_up;
};

/* ---- options ------------------------------------------------------------------------------ */

static bool notices_off(const char *url)
{
    return !url || !*url || !strcmp(url, "none");
}

/* scheme, host and port of url, and whether it names a user (credentials). 0, or -1. */
static int url_parts(const char *url, char *scheme, size_t scap, char *shown, size_t cap, bool *user)
{
    CURLU *u = curl_url();
    char *sch = NULL, *host = NULL, *port = NULL, *who = NULL;
    int rc = u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
                     curl_url_get(u, CURLUPART_SCHEME, &sch, 0) == CURLUE_OK &&
                     curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host
                 ? 0
                 : -1;
    if (rc == 0) {
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
        *user = curl_url_get(u, CURLUPART_USER, &who, 0) == CURLUE_OK && who && *who;
        snprintf(scheme, scap, "%s", sch);
        snprintf(shown, cap, "%s://%s%s%s", sch, host, port ? ":" : "", port ? port : "");
    }
    curl_free(sch);
    curl_free(host);
    curl_free(port);
    curl_free(who);
    curl_url_cleanup(u);
    return rc;
}

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f)
            return false;
    return true;
}

int web_notify_check(const web_config_t *cfg, char *err, size_t cap)
{
    if (notices_off(cfg->smtp_url))
        return 0;
    char scheme[16], shown[URL_MAX];
    bool user = false;
    if (strlen(cfg->smtp_url) >= URL_MAX || !printable_ascii(cfg->smtp_url) ||
        url_parts(cfg->smtp_url, scheme, sizeof scheme, shown, sizeof shown, &user) != 0 ||
        (strcmp(scheme, "smtp") && strcmp(scheme, "smtps"))) {
        snprintf(err, cap, "--smtp-url: not smtp://HOST[:PORT] or smtps://HOST[:PORT] (or none)");
        return -1;
    }
    if (user && !strcmp(scheme, "smtp") && !cfg->smtp_starttls) {
        snprintf(err, cap, "--smtp-url: a password would cross in the clear: use smtps:// or --smtp-starttls");
        return -1;
    }
    if (!cfg->smtp_from || !hx_email_valid(cfg->smtp_from)) {
        snprintf(err, cap, "--smtp-from: %s", cfg->smtp_from ? "not a valid address" : "required with --smtp-url");
        return -1;
    }
    const char *p = cfg->public_url;
    if (p && (strlen(p) > PUBLIC_URL_MAX || !printable_ascii(p) || strpbrk(p, "?#") ||
              (strncmp(p, "http://", 7) && strncmp(p, "https://", 8)))) {
        snprintf(err, cap, "--public-url: not an http:// or https:// address of printable ASCII without a query "
                 "(at most %d bytes)", PUBLIC_URL_MAX);
        return -1;
    }
    return 0;
}

/* ---- what a message calls for ----------------------------------------------------------------- */

/* The kind of notice (0: none) and the referral id of a message stored for clinic. */
static unsigned classify(const char *clinic, const char *type, const uint8_t *payload, size_t len, char *rid,
                         size_t cap)
{
    unsigned kind = 0;
    rid[0] = '\0';
    if (!strcmp(type, "handoff.Handoff")) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, len, payload);
        if (h) {
            snprintf(rid, cap, "%s", h->referral_id);
            kind = HX_NOTIFY_HANDOFF;
        }
        handoff__handoff__free_unpacked(h, NULL);
    } else if (!strcmp(type, "handoff.ThreadPost")) {
        /* a question awaits this clinic's reply: asked by someone else, and not this clinic's own post */
        Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, len, payload);
        if (p && p->awaiting_reply && strcmp(p->asked_by, clinic) && strcmp(p->by, clinic)) {
            snprintf(rid, cap, "%s", p->referral_id);
            kind = HX_NOTIFY_QUESTION;
        }
        handoff__thread_post__free_unpacked(p, NULL);
    } else if (!strcmp(type, "handoff.StatusUpdate")) {
        /* a refused request changes nothing (the clinic stores it as handoff.Refusal anyway) */
        Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, payload);
        if (s && !s->refused) {
            snprintf(rid, cap, "%s", s->referral_id);
            kind = HX_NOTIFY_STATUS;
        }
        handoff__status_update__free_unpacked(s, NULL);
    }
    return kind;
}

/* The public address of the portal, without a trailing '/'. */
static void public_url(const web_t *w, char *out, size_t cap)
{
    if (w->cfg.public_url && *w->cfg.public_url)
        snprintf(out, cap, "%s", w->cfg.public_url);
    else
        snprintf(out, cap, "http://127.0.0.1:%d", w->port);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
}

/* Subject and body of a notice: the clinic, the kind of event, the referral id and the link;
 * nothing of the patient. Lines end in CRLF and stay within 78 characters (the link's line only
 * is longer, when --public-url is longer than 47 characters). */
static void compose(const web_t *w, const char *clinic, unsigned kind, const char *rid, char *subject, size_t scap,
                    char *body, size_t bcap)
{
    char base[PUBLIC_URL_MAX + 32];
    public_url(w, base, sizeof base);
    const char *what = kind == HX_NOTIFY_HANDOFF    ? "New handoff"
                       : kind == HX_NOTIFY_QUESTION ? "A question awaits your reply"
                                                    : "Status change";
    snprintf(subject, scap, "[Handoff] %s: %s", what, rid);
    char line[128];
    if (kind == HX_NOTIFY_HANDOFF)
        snprintf(line, sizeof line, "A new handoff has arrived for %s.", clinic);
    else if (kind == HX_NOTIFY_QUESTION)
        snprintf(line, sizeof line, "A question on a referral awaits a reply from %s.", clinic);
    else
        snprintf(line, sizeof line, "A referral of %s has a new status.", clinic);
    snprintf(body, bcap,
             "%s\r\n"
             "\r\n"
             "Referral: %s\r\n"
             "\r\n"
             "Open it in the portal (you will be asked to sign in):\r\n"
             "%s/referral?id=%s\r\n"
             "\r\n"
             "This notice carries no patient details: they are in the portal only.\r\n"
             "To choose which notices you get:\r\n"
             "%s/prefs\r\n"
             "\r\n"
             "-- \r\n"
             "Handoff, the clinic network's referral portal\r\n",
             line, rid, base, rid, base);
}

void web_notify_message(web_t *w, web_hosted_t *h, const char *type, const uint8_t *payload, size_t len)
{
    struct web_notify *n = w->notify;
    if (!n || h->reviewer || !type)
        return;
    char rid[64];
    unsigned kind = classify(h->id, type, payload, len, rid, sizeof rid);
    if (!kind || !hx_referral_id_valid(rid))
        return;
    char subject[HX_MAIL_SUBJECT_MAX + 1], body[HX_MAIL_BODY_MAX + 1], key[128];
    compose(w, h->id, kind, rid, subject, sizeof subject, body, sizeof body);
    /* the event's key: this clinic, the type and a hash of the message (a second queueing of the
     * same message is a no-op) */
    uint8_t hash[16];
    char hex[sizeof hash * 2 + 1];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof hash);
    crypto_generichash_update(&st, (const uint8_t *)type, strlen(type) + 1);
    crypto_generichash_update(&st, payload, len);
    crypto_generichash_final(&st, hash, sizeof hash);
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    snprintf(key, sizeof key, "%s:%s", h->id, hex);
    pthread_mutex_lock(&n->mu);
    int queued = hx_mail_queue(n->acc, h->id, kind, key, subject, body);
    if (queued > 0)
        pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->mu);
    if (queued < 0) {
        fprintf(stderr, "handoff-web: notices: %s: could not queue the notices of %s (accounts store)\n", h->id,
                rid);
    } else if (queued > 0) {
        n->queued += (unsigned long long)queued;
        fprintf(stderr, "handoff-web: notices: %s: %d queued (%s, %s)\n", h->id, queued,
                kind == HX_NOTIFY_HANDOFF ? "new handoff" : kind == HX_NOTIFY_QUESTION ? "question" : "status", rid);
    }
}

/* ---- sending ---------------------------------------------------------------------------------- */

/* RFC 5322 date-time, UTC, without the locale. */
static void mail_date(uint64_t ms, char *out, size_t cap)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The whole message: headers, a blank line, the body (malloc'd; NULL when out of memory). The
 * Message-ID stays the same for every attempt, so a receiver can tell a repeat. */
static char *mail_text(const struct web_notify *n, const hx_mail_t *m)
{
    char date[64];
    mail_date(m->created_ms, date, sizeof date);
    const char *fmt = "Date: %s\r\n"
                      "From: Handoff <%s>\r\n"
                      "To: <%s>\r\n"
                      "Subject: %s\r\n"
                      "Message-ID: <handoff-notice.%lld.%llu@%s>\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=us-ascii\r\n"
                      "Content-Transfer-Encoding: 7bit\r\n"
                      "Auto-Submitted: auto-generated\r\n"
                      "\r\n"
                      "%s";
    const char *from = n->from_addr;
    int len = snprintf(NULL, 0, fmt, date, from, m->to, m->subject, (long long)m->id,
                       (unsigned long long)m->created_ms, n->from_domain, m->body);
    char *text = len > 0 ? malloc((size_t)len + 1) : NULL;
    if (text)
        snprintf(text, (size_t)len + 1, fmt, date, from, m->to, m->subject, (long long)m->id,
                 (unsigned long long)m->created_ms, n->from_domain, m->body);
    return text;
}

typedef struct {
    const char *data;
    size_t len, off;
} upload_t;

static size_t upload_read(char *buf, size_t size, size_t nitems, void *ud)
{
    upload_t *u = ud;
    size_t room = size * nitems, left = u->len - u->off, n = left < room ? left : room;
    memcpy(buf, u->data + u->off, n);
    u->off += n;
    return n;
}

static int transfer_abort(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return atomic_load(&((struct web_notify *)ud)->abort_send) ? 1 : 0;
}

/* Sends one notice: 0, or -1 with why (the server's answer or curl's). */
static int smtp_send(struct web_notify *n, const hx_mail_t *m, char *why, size_t cap)
{
    if (!hx_email_valid(m->to) || strchr(m->subject, '\r') || strchr(m->subject, '\n')) {
        snprintf(why, cap, "not a valid address or subject");   /* checked when queued: never here */
        return -1;
    }
    char *text = mail_text(n, m);
    CURL *c = curl_easy_init();
    char to[HX_EMAIL_MAX + 3], errbuf[CURL_ERROR_SIZE] = "";
    snprintf(to, sizeof to, "<%s>", m->to);
    struct curl_slist *rcpt = curl_slist_append(NULL, to);
    if (!text || !c || !rcpt) {
        snprintf(why, cap, "out of memory");
        free(text);
        curl_easy_cleanup(c);
        curl_slist_free_all(rcpt);
        return -1;
    }
    upload_t up = {.data = text, .len = strlen(text)};
    curl_easy_setopt(c, CURLOPT_URL, n->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_USE_SSL, n->use_ssl);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, n->from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);              /* a thread of a threaded program */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, transfer_abort);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, n);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
        if (code)
            snprintf(why, cap, "%s (the server answered %ld)", errbuf[0] ? errbuf : curl_easy_strerror(rc), code);
        else
            snprintf(why, cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    sodium_memzero(text, up.len);
    free(text);
    return rc == CURLE_OK ? 0 : -1;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits on n->wake (n->mu held) for ms at most. */
static void wait_ms(struct web_notify *n, uint64_t ms)
{
    web_timedwait(&n->wake, &n->mu, CLOCK_MONOTONIC, ms);
}

static void *sender(void *arg)
{
    struct web_notify *n = arg;
    hx_mail_t *m = malloc(sizeof *m);
    if (!m) {
        fprintf(stderr, "handoff-web: notices: out of memory: nothing is sent\n");
        return NULL;
    }
    pthread_mutex_lock(&n->mu);
    while (!n->stopping) {
        uint64_t next = 0;
        int due = hx_mail_due(n->acc, m, &next);
        if (due <= 0) {
            uint64_t now = wall_ms();
            wait_ms(n, due < 0 ? WAIT_ERROR_MS
                       : next == 0 ? WAIT_IDLE_MS
                       : next > now ? (next - now < WAIT_IDLE_MS ? next - now : WAIT_IDLE_MS)
                                    : 0);
            if (due < 0)
                fprintf(stderr, "handoff-web: notices: the outbox could not be read; trying again\n");
            continue;
        }
        pthread_mutex_unlock(&n->mu);       /* the store is free while the mail server talks */
        char why[CURL_ERROR_SIZE + 64] = "";
        int rc = smtp_send(n, m, why, sizeof why);
        pthread_mutex_lock(&n->mu);
        if (rc == 0) {
            if (hx_mail_sent(n->acc, m->id) != 0)
                fprintf(stderr, "handoff-web: notices: notice %lld was sent but could not be marked so\n",
                        (long long)m->id);
            n->sent++;
            fprintf(stderr, "handoff-web: notices: notice %lld sent to %s's address\n", (long long)m->id, m->user);
            continue;
        }
        if (n->stopping)                    /* abandoned: tried again at the next start */
            break;
        int gave_up = hx_mail_failed(n->acc, m->id, &n->retry, why);
        if (gave_up == 1) {
            n->given_up++;
            fprintf(stderr,
                    "handoff-web: notices: notice %lld to %s's address given up after %u attempts over 24 hours: "
                    "%s\n",
                    (long long)m->id, m->user, m->attempts + 1, why);
        } else {
            n->retried++;
            fprintf(stderr, "handoff-web: notices: notice %lld not sent (attempt %u), tried again later: %s\n",
                    (long long)m->id, m->attempts + 1, why);
            if (gave_up < 0)
                wait_ms(n, WAIT_ERROR_MS);  /* the store failed: not at once again */
        }
    }
    pthread_mutex_unlock(&n->mu);
    free(m);
    return NULL;
}

int web_notify_start(web_t *w, char *err, size_t cap)
{
    w->notify = NULL;
    if (cap)
        err[0] = '\0';
    if (notices_off(w->cfg.smtp_url))
        return 0;
    if (web_notify_check(&w->cfg, err, cap) != 0)
        return -1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, cap, "notices: libcurl did not start");
        return -1;
    }
    struct web_notify *n = calloc(1, sizeof *n);
    if (!n) {
        snprintf(err, cap, "notices: out of memory");
        goto fail_curl;
    }
    char scheme[16];
    bool user = false;
    snprintf(n->url, sizeof n->url, "%s", w->cfg.smtp_url);
    url_parts(n->url, scheme, sizeof scheme, n->shown, sizeof n->shown, &user);
    /* smtps: TLS from the start; smtp: STARTTLS when asked for, else the server's plain port (a
     * relay on this host or network; a notice holds no patient details, and credentials in
     * the URL need TLS, web_notify_check) */
    n->use_ssl = !strcmp(scheme, "smtps") || w->cfg.smtp_starttls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE;
    snprintf(n->from, sizeof n->from, "<%s>", w->cfg.smtp_from);
    snprintf(n->from_addr, sizeof n->from_addr, "%s", w->cfg.smtp_from);
    snprintf(n->from_domain, sizeof n->from_domain, "%s", strchr(w->cfg.smtp_from, '@') + 1);
    n->retry = (hx_mail_retry_t){.first_ms = w->cfg.smtp_retry_ms ? w->cfg.smtp_retry_ms : 30000};
    atomic_init(&n->abort_send, false);
    hx_accounts_config_t acfg = {0};
    if (hx_accounts_open(w->cfg.accounts, &acfg, &n->acc, err, cap) != 0)
        goto fail_alloc;
    if (pthread_mutex_init(&n->mu, NULL) != 0)
        goto fail_acc;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int crc = pthread_cond_init(&n->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (crc != 0)
        goto fail_mu;
    if (pthread_create(&n->sender, NULL, sender, n) != 0)
        goto fail_cond;
    w->notify = n;
    char base[PUBLIC_URL_MAX + 32];
    public_url(w, base, sizeof base);
    fprintf(stderr, "handoff-web: notices: through %s%s from %s, linking to %s%s\n", n->shown,
            !strcmp(scheme, "smtps") ? " (TLS)" : w->cfg.smtp_starttls ? " (STARTTLS)" : "", w->cfg.smtp_from, base,
            w->cfg.public_url ? "" : " (no --public-url: only this host can follow the links)");
    return 0;

fail_cond:
    pthread_cond_destroy(&n->wake);
fail_mu:
    pthread_mutex_destroy(&n->mu);
fail_acc:
    hx_accounts_close(&n->acc);
fail_alloc:
    if (!err[0])
        snprintf(err, cap, "notices: cannot start the sender");
    free(n);
fail_curl:
    curl_global_cleanup();
    return -1;
}

void web_notify_stop(web_t *w)
{
    struct web_notify *n = w->notify;
    if (!n)
        return;
    atomic_store(&n->abort_send, true);
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->sender, NULL);
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->mu);
    hx_accounts_close(&n->acc);
    sodium_memzero(n->url, sizeof n->url);
    free(n);
    w->notify = NULL;
    curl_global_cleanup();
}

void web_notify_metrics(web_t *w, hx_html_t *out)
{
    struct web_notify *n = w->notify;
    if (!n)
        return;
    uint64_t waiting = 0, sent = 0, given_up = 0;
    pthread_mutex_lock(&n->mu);
    int rc = hx_mail_counts(n->acc, &waiting, &sent, &given_up);
    pthread_mutex_unlock(&n->mu);
    HX_HTML_F(out,
              "# HELP handoff_web_notices_total E-mail notices by what became of them.\n"
              "# TYPE handoff_web_notices_total counter\n"
              "handoff_web_notices_total{result=\"queued\"} %llu\n"
              "handoff_web_notices_total{result=\"sent\"} %llu\n"
              "handoff_web_notices_total{result=\"retried\"} %llu\n"
              "handoff_web_notices_total{result=\"given_up\"} %llu\n",
              (unsigned long long)n->queued, (unsigned long long)n->sent, (unsigned long long)n->retried,
              (unsigned long long)n->given_up);
    if (rc == 0)
        HX_HTML_F(out, "# HELP handoff_web_notices_waiting E-mail notices in the outbox, not sent yet.\n"
                       "# TYPE handoff_web_notices_waiting gauge\nhandoff_web_notices_waiting %llu\n",
                  (unsigned long long)waiting);
}
