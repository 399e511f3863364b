/* web_fhir_notify — subscriptions' rest-hook deliveries (web_fhir.h, docs/FHIR.md, the R4
 * backport of topic-based subscriptions). A thread of its own looks, each second and whenever
 * kicked, at every subscription of the accounts store (hx_api.h) whose clinic this portal
 * hosts and whose time has come: it sends the handshake first, then one event-notification
 * Bundle per focus of each message stored after the subscription's cursor that touches its
 * topic (hx_fhir_message_foci), in the order the messages were stored. A failed delivery holds
 * that subscription back (--fhir-retry-ms, doubling with each failure in a row, up to
 * --fhir-retry-max-ms); the others go on.
 *
 * A delivery is a POST of the Bundle (application/fhir+json) with libcurl to channel.endpoint:
 * https:// only unless --fhir-http-hooks, redirects not followed, 5 s to connect and 10 s in
 * all, with the subscription's header when it has one; 2xx is delivered, anything else is not.
 * What is sent is the focus's id or, for full-resource, the focus itself as the clinic's own
 * store has it (the rows of its referral, web_fhir_view_load_referral): nothing else. The log names the subscription, the
 * endpoint's host and what failed; never a patient detail, never the header.
 *
 * Progress: the events counter is stored after each delivery, before the next one; the cursor
 * moves past a message only once every focus of it was delivered (a message without a focus of
 * the topic is simply passed). Within a run the foci already delivered of the message in hand
 * are remembered (partial_t), so a delivery that fails in the middle of a message resumes with
 * its next focus; after a restart in the middle of a message, its earlier foci are sent again
 * (with new event numbers): a receiver may see a change twice, it never misses one.
 *
 * Locks: the accounts store under w->lock, a clinic's store under h->mu, each only for a
 * read or a write and never both at once; no lock is held while an endpoint is talked to. */
#include "web_fhir.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 1000u               /* subscriptions are looked at least this often */
#define ROWS_BATCH 64               /* store messages read at once */
#define BATCHES_PER_ROUND 4         /* then the other subscriptions' turn (the next round at once) */
#define FOCI_MAX 16                 /* foci of one message */
#define BASE_MAX 320
#define HOST_MAX 256
#define CONNECT_MS 5000L
#define TOTAL_MS 10000L
#define RETRY_MS 30000u             /* when --fhir-retry-ms is 0 */
#define RETRY_MAX_MS 3600000u       /* when --fhir-retry-max-ms is 0 */

/* The foci of one message already delivered to a subscription, while the rest are not. */
typedef struct {
    char sub[sizeof ((hx_fhir_sub_t *)0)->id];
    int64_t seq;
    size_t done;
} partial_t;

struct web_fhir_notify {
    web_t *w;
    pthread_mutex_t mu;
    pthread_cond_t wake;            /* a kick, or stop (CLOCK_MONOTONIC) */
    bool kicked;                    /* under mu */
    atomic_bool stopping;           /* set under mu; read between deliveries */
    pthread_t thread;
    bool each_failed;               /* the notifier's own: the last listing failed (logged once) */
    partial_t *partial;             /* the notifier's own */
    size_t n_partial, cap_partial;
};

/* One store message as a subscription sees it: the foci of its topic. */
typedef struct {
    int64_t seq;
    uint64_t at_ms;
    size_t n_foci;
    hx_fhir_focus_t foci[FOCI_MAX];
} row_t;

typedef struct {
    hx_clinic_t *c;
    const char *clinic, *topic;
    size_t n;
    row_t rows[ROWS_BATCH];
} rows_t;

typedef struct {
    hx_api_sub_t *v;
    size_t n, cap;
    bool oom;
} subs_t;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- where things are ----------------------------------------------------------------------- */

/* The API's base URL as notifications name it: --public-url's, else the listening address's. */
static void base_url(const web_t *w, char *out, size_t cap)
{
    const char *pub = w->cfg.public_url;
    if (pub && *pub) {
        size_t n = strlen(pub);
        while (n > 0 && pub[n - 1] == '/')
            n--;
        snprintf(out, cap, "%.*s/fhir/r4", (int)n, pub);
        return;
    }
    const char *listen = w->cfg.listen && *w->cfg.listen ? w->cfg.listen : "127.0.0.1:8080";
    const char *colon = strrchr(listen, ':');
    if (colon && w->port > 0)       /* port 0 in --listen: the one taken */
        snprintf(out, cap, "http://%.*s:%d/fhir/r4", (int)(colon - listen), listen, w->port);
    else
        snprintf(out, cap, "http://%s/fhir/r4", listen);
}

/* The endpoint's host (and port), for the log: never its path or query, which may carry a key. */
static void endpoint_host(const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        snprintf(out, cap, "%s%s%s", host, port ? ":" : "", port ? port : "");
    } else {
        snprintf(out, cap, "(not a URL)");
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* Whether h is one header line "Name: value": a token before the colon, no control characters. */
static bool header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h)
        return false;
    for (const char *p = h; p < colon; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return false;
    for (const char *p = colon; *p; p++)
        if (((unsigned char)*p < ' ' && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

/* ---- one delivery ----------------------------------------------------------------------------- */

static size_t discard(char *data, size_t size, size_t nmemb, void *ud)
{
    (void)data, (void)ud;
    return size * nmemb;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *line, bool *ok)
{
    struct curl_slist *more = curl_slist_append(list, line);
    if (!more) {
        *ok = false;
        return list;
    }
    return more;
}

/* POSTs bundle to s's endpoint: 0 when it answered 2xx, or -1 with why (curl's words or the
 * status it answered; never the header). */
static int post(const web_t *w, const hx_api_sub_t *s, const json_t *bundle, char *why, size_t cap)
{
    const char *url = s->sub.endpoint;
    bool https = !strncmp(url, "https://", 8), http = !strncmp(url, "http://", 7);
    if (!https && !(http && w->cfg.fhir_http_hooks)) {
        snprintf(why, cap, "%s", http ? "http:// endpoints are not allowed here (--fhir-http-hooks)"
                                      : "the endpoint is not https://");
        return -1;
    }
    if (s->sub.header[0] && !header_ok(s->sub.header)) {
        snprintf(why, cap, "the channel header is not one 'Name: value' line");
        return -1;
    }
    char *body = json_dumps(bundle, JSON_COMPACT);
    CURL *c = curl_easy_init();
    bool ok = body && c;
    struct curl_slist *headers = add_header(NULL, "Content-Type: application/fhir+json", &ok);
    headers = add_header(headers, "Accept: application/fhir+json", &ok);
    headers = add_header(headers, "Expect:", &ok);          /* no 100-continue round trip */
    if (s->sub.header[0])
        headers = add_header(headers, s->sub.header, &ok);
    if (!ok) {
        snprintf(why, cap, "out of memory");
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        free(body);
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "handoff-web");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);              /* a thread of a threaded program */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TOTAL_MS);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    int out = rc == CURLE_OK && code >= 200 && code < 300 ? 0 : -1;
    if (rc != CURLE_OK)
        snprintf(why, cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else if (out != 0)
        snprintf(why, cap, "the endpoint answered %ld", code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    free(body);
    return out;
}

/* ---- a subscription's progress ------------------------------------------------------------------ */

/* Stores s's progress. A client may have changed the subscription while an endpoint was
 * talked to: turned off, it stays off; given a new endpoint or asked for again (a new
 * handshake: hx_api_sub_update), its status, handshake and failures stay as the client left
 * them. The cursor and the events counter are this thread's alone. shook: s's handshake was
 * made just now. 0, or -1 (logged unless the subscription is gone). */
static int persist(web_t *w, hx_api_sub_t *s, bool shook)
{
    hx_api_sub_t now;
    pthread_mutex_lock(&w->lock);
    int rc = hx_api_sub_get(w->accounts, s->clinic, s->sub.id, &now);
    if (rc == 0) {
        if (!strcmp(now.sub.status, "off")) {
            snprintf(s->sub.status, sizeof s->sub.status, "off");
        } else if (strcmp(now.sub.endpoint, s->sub.endpoint) || (s->handshake_done && !now.handshake_done && !shook)) {
            memcpy(s->sub.status, now.sub.status, sizeof s->sub.status);
            memcpy(s->sub.error, now.sub.error, sizeof s->sub.error);
            s->handshake_done = now.handshake_done;
            s->failures = now.failures;
            s->next_ms = now.next_ms;
        }
        rc = hx_api_sub_progress(w->accounts, s);
        if (rc != 0)
            fprintf(stderr, "handoff-web: subscription %s: its progress could not be stored (accounts store)\n",
                    s->sub.id);
    }
    pthread_mutex_unlock(&w->lock);
    sodium_memzero(&now, sizeof now);      /* the header may be a credential */
    return rc;
}

/* The wait after failures in a row: the first retry's, doubling, at most the cap. */
static uint64_t backoff(const web_config_t *cfg, uint32_t failures)
{
    uint64_t first = cfg->fhir_retry_ms ? cfg->fhir_retry_ms : RETRY_MS;
    uint64_t most = cfg->fhir_retry_max_ms ? cfg->fhir_retry_max_ms : RETRY_MAX_MS;
    if (most < first)
        most = first;
    uint64_t d = first;
    for (uint32_t i = 1; i < failures && d < most; i++)
        d *= 2;
    return d < most ? d : most;
}

/* A delivery answered 2xx: the subscription is active, its failures forgotten. */
static void delivered(web_t *w, hx_api_sub_t *s)
{
    w->fhir_notified++;
    s->failures = 0;
    s->next_ms = 0;
    s->sub.error[0] = '\0';
    snprintf(s->sub.status, sizeof s->sub.status, "active");
}

/* A delivery failed: recorded, logged (one line), and held back. */
static void failed(web_t *w, hx_api_sub_t *s, const char *why)
{
    w->fhir_notify_failed++;
    if (s->failures < UINT32_MAX)
        s->failures++;
    s->next_ms = wall_ms() + backoff(&w->cfg, s->failures);
    snprintf(s->sub.status, sizeof s->sub.status, "error");
    snprintf(s->sub.error, sizeof s->sub.error, "%s", why);
    char host[HOST_MAX];
    endpoint_host(s->sub.endpoint, host, sizeof host);
    fprintf(stderr, "handoff-web: subscription %s to %s: %s\n", s->sub.id, host, why);
    persist(w, s, false);
}

/* Before a delivery, s as stored now: false when it was deleted or turned off meanwhile, or
 * its handshake is to be made again (nothing is sent then); otherwise its channel (endpoint,
 * header, payload, end) as a client last set it. The progress stays this thread's. */
static bool still_wanted(web_t *w, hx_api_sub_t *s)
{
    hx_api_sub_t now;
    pthread_mutex_lock(&w->lock);
    int rc = hx_api_sub_get(w->accounts, s->clinic, s->sub.id, &now);
    pthread_mutex_unlock(&w->lock);
    bool wanted = rc == 0 && strcmp(now.sub.status, "off") && !(s->handshake_done && !now.handshake_done) &&
                  !(now.sub.end_ms && wall_ms() >= now.sub.end_ms);
    if (wanted) {
        memcpy(s->sub.endpoint, now.sub.endpoint, sizeof s->sub.endpoint);
        memcpy(s->sub.header, now.sub.header, sizeof s->sub.header);
        s->sub.payload = now.sub.payload;
        s->sub.end_ms = now.sub.end_ms;
    }
    sodium_memzero(&now, sizeof now);      /* the header may be a credential */
    return wanted;
}

/* ---- foci already delivered of the message in hand ---------------------------------------------- */

static partial_t *partial_find(struct web_fhir_notify *n, const char *sub)
{
    for (size_t i = 0; i < n->n_partial; i++)
        if (!strcmp(n->partial[i].sub, sub))
            return &n->partial[i];
    return NULL;
}

static size_t partial_done(struct web_fhir_notify *n, const char *sub, int64_t seq)
{
    partial_t *p = partial_find(n, sub);
    return p && p->seq == seq ? p->done : 0;
}

/* Out of memory: not remembered (a failure later in the message sends its first foci again). */
static void partial_set(struct web_fhir_notify *n, const char *sub, int64_t seq, size_t done)
{
    partial_t *p = partial_find(n, sub);
    if (!p) {
        if (n->n_partial == n->cap_partial) {
            size_t cap = n->cap_partial ? n->cap_partial * 2 : 8;
            partial_t *v = realloc(n->partial, cap * sizeof *v);
            if (!v)
                return;
            n->partial = v;
            n->cap_partial = cap;
        }
        p = &n->partial[n->n_partial++];
        snprintf(p->sub, sizeof p->sub, "%s", sub);
    }
    p->seq = seq;
    p->done = done;
}

static void partial_forget(struct web_fhir_notify *n, const char *sub)
{
    partial_t *p = partial_find(n, sub);
    if (p)
        *p = n->partial[--n->n_partial];
}

/* Forgets the partial messages of subscriptions no longer listed. */
static void partial_prune(struct web_fhir_notify *n, const subs_t *subs)
{
    for (size_t i = 0; i < n->n_partial;) {
        bool listed = false;
        for (size_t j = 0; j < subs->n && !listed; j++)
            listed = !strcmp(subs->v[j].sub.id, n->partial[i].sub);
        if (listed)
            i++;
        else
            n->partial[i] = n->partial[--n->n_partial];
    }
}

/* ---- delivering --------------------------------------------------------------------------------- */

/* Each message: its foci of the topic (under h->mu: sent reads the store). */
static void collect_row(void *ud, int64_t seq, const char *type, const char *referral_id, const uint8_t *payload,
                        size_t len, uint64_t at_ms)
{
    rows_t *r = ud;
    if (r->n == ROWS_BATCH)
        return;
    row_t *row = &r->rows[r->n++];
    row->seq = seq;
    row->at_ms = at_ms;
    row->n_foci = 0;
    bool sent = referral_id[0] && hx_clinic_sent_before(r->c, referral_id);
    hx_fhir_focus_t all[FOCI_MAX];
    size_t n = hx_fhir_message_foci(r->clinic, sent, type, payload ? payload : (const uint8_t *)"", len, all,
                                    FOCI_MAX);
    for (size_t i = 0; i < n && i < FOCI_MAX; i++)
        if (all[i].topic && !strcmp(all[i].topic, r->topic))
            row->foci[row->n_foci++] = all[i];
}

/* The next messages after s's cursor into rows. 0, or -1 (logged). */
static int read_rows(web_hosted_t *h, const hx_api_sub_t *s, rows_t *rows)
{
    rows->c = h->clinic;
    rows->clinic = h->id;
    rows->topic = s->sub.topic;
    rows->n = 0;
    pthread_mutex_lock(&h->mu);
    int rc = hx_clinic_each_received_after(h->clinic, s->cursor, ROWS_BATCH, collect_row, rows);
    if (rc != 0)
        fprintf(stderr, "handoff-web: subscription %s: %s's store could not be read: %s\n", s->sub.id, h->id,
                hx_clinic_error(h->clinic));
    pthread_mutex_unlock(&h->mu);
    return rc == 0 ? 0 : -1;
}

/* The handshake: 0 once it was delivered (s is active then), or -1. */
static int handshake(struct web_fhir_notify *n, hx_api_sub_t *s, const char *base)
{
    web_t *w = n->w;
    if (!still_wanted(w, s))
        return -1;
    json_t *b = hx_fhir_notification(&s->sub, base, "handshake", s->sub.events, wall_ms(), NULL, NULL);
    char why[CURL_ERROR_SIZE + 64];
    int rc = b ? post(w, s, b, why, sizeof why) : (snprintf(why, sizeof why, "out of memory"), -1);
    json_decref(b);
    if (rc != 0) {
        failed(w, s, why);
        return -1;
    }
    s->handshake_done = true;
    delivered(w, s);
    return persist(w, s, true);
}

/* The view a full-resource notification reads its focus from: the rows of the focus's
 * referral only (a Task's or ServiceRequest's id begins with it), kept while the next focus
 * is of the same referral, so a notification costs what its referral holds, not the store. */
typedef struct {
    hx_fhir_view_t *v;
    char rid[HX_REFERRAL_ID_LEN + 1];   /* "" : the whole store */
} view_cache_t;

static int view_for(web_t *w, web_hosted_t *h, const hx_fhir_focus_t *focus, view_cache_t *c, char *err, size_t cap)
{
    char rid[HX_REFERRAL_ID_LEN + 1] = "";
    bool one = web_fhir_referral_of(focus->type, focus->id, rid);
    if (c->v && strcmp(c->rid, rid) == 0)
        return 0;
    hx_fhir_view_destroy(&c->v);
    snprintf(c->rid, sizeof c->rid, "%s", rid);
    return one ? web_fhir_view_load_referral(w, h, rid, &c->v, err, cap) : web_fhir_view_load(w, h, &c->v, err, cap);
}

/* One event-notification of focus (of the message row): 0 once delivered (the events counter
 * moved and is stored), or -1. */
static int deliver_event(struct web_fhir_notify *n, web_hosted_t *h, hx_api_sub_t *s, const char *base,
                         const row_t *row, const hx_fhir_focus_t *focus, bool last_of_row, view_cache_t *view)
{
    web_t *w = n->w;
    if (atomic_load(&n->stopping) || !still_wanted(w, s))
        return -1;
    json_t *res = NULL;
    if (s->sub.payload == HX_FHIR_PAYLOAD_FULL) {
        char err[256] = "";
        if (view_for(w, h, focus, view, err, sizeof err) != 0) {
            fprintf(stderr, "handoff-web: subscription %s: %s's store could not be loaded: %s\n", s->sub.id, h->id,
                    err);
            failed(w, s, "the clinic's store could not be read");
            return -1;
        }
        /* NULL when the view has no such resource: the notification then names it only */
        res = hx_fhir_view_read(view->v, focus->type, focus->id);
    }
    json_t *b = hx_fhir_notification(&s->sub, base, "event-notification", s->sub.events + 1, row->at_ms, focus,
                                     res);
    json_decref(res);
    char why[CURL_ERROR_SIZE + 64];
    int rc = b ? post(w, s, b, why, sizeof why) : (snprintf(why, sizeof why, "out of memory"), -1);
    json_decref(b);
    if (rc != 0) {
        failed(w, s, why);
        return -1;
    }
    s->sub.events++;
    if (last_of_row)
        s->cursor = row->seq;
    delivered(w, s);
    return persist(w, s, false);
}

/* The messages of rows in order: 0 when all were dealt with, or -1 (s held back or stopping). */
static int deliver_rows(struct web_fhir_notify *n, web_hosted_t *h, hx_api_sub_t *s, const rows_t *rows,
                        const char *base)
{
    view_cache_t view = {0};
    int64_t stored = s->cursor;
    int rc = 0;
    for (size_t i = 0; i < rows->n && rc == 0; i++) {
        const row_t *row = &rows->rows[i];
        if (row->n_foci == 0) {
            s->cursor = row->seq;           /* nothing of this topic: passed */
            continue;
        }
        for (size_t f = partial_done(n, s->sub.id, row->seq); f < row->n_foci && rc == 0; f++) {
            bool last = f + 1 == row->n_foci;
            rc = deliver_event(n, h, s, base, row, &row->foci[f], last, &view);
            if (rc == 0 && last)
                stored = row->seq;          /* deliver_event stored it with the last focus */
            else if (rc == 0)
                partial_set(n, s->sub.id, row->seq, f + 1);
        }
        if (rc == 0) {
            s->cursor = row->seq;
            partial_forget(n, s->sub.id);
        }
    }
    if (rc == 0 && s->cursor != stored && persist(n->w, s, false) != 0)
        rc = -1;
    hx_fhir_view_destroy(&view.v);
    return rc;
}

/* What is due to one subscription: true when messages are left for the next round. */
static bool serve(struct web_fhir_notify *n, hx_api_sub_t *s, rows_t *rows)
{
    web_t *w = n->w;
    uint64_t now = wall_ms();
    if (!strcmp(s->sub.status, "off"))
        return false;
    web_hosted_t *h = web_hosted_find(w, s->clinic, false);
    if (!h || !h->clinic)
        return false;
    if (s->sub.end_ms && now >= s->sub.end_ms) {
        snprintf(s->sub.status, sizeof s->sub.status, "off");
        persist(w, s, false);
        partial_forget(n, s->sub.id);
        return false;
    }
    if (s->next_ms > now)
        return false;
    char base[BASE_MAX];
    base_url(w, base, sizeof base);
    if (!s->handshake_done && handshake(n, s, base) != 0)
        return false;
    for (int b = 0; b < BATCHES_PER_ROUND; b++) {
        if (atomic_load(&n->stopping) || read_rows(h, s, rows) != 0 || rows->n == 0 ||
            deliver_rows(n, h, s, rows, base) != 0 || rows->n < ROWS_BATCH)
            return false;
    }
    return true;
}

static void collect_sub(void *ud, const hx_api_sub_t *s)
{
    subs_t *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        hx_api_sub_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *s;
}

/* One look at every subscription: true when one has messages left for another round. */
static bool round_all(struct web_fhir_notify *n, rows_t *rows)
{
    web_t *w = n->w;
    subs_t subs = {0};
    pthread_mutex_lock(&w->lock);
    int rc = hx_api_sub_each(w->accounts, NULL, collect_sub, &subs);
    pthread_mutex_unlock(&w->lock);
    bool more = false;
    if (rc != 0 || subs.oom) {
        if (!n->each_failed)
            fprintf(stderr, "handoff-web: subscriptions: %s; trying again\n",
                    subs.oom ? "out of memory" : "the accounts store could not be read");
        n->each_failed = true;
    } else {
        n->each_failed = false;
        partial_prune(n, &subs);
        for (size_t i = 0; i < subs.n && !atomic_load(&n->stopping); i++)
            if (serve(n, &subs.v[i], rows))
                more = true;
    }
    if (subs.v)
        sodium_memzero(subs.v, subs.cap * sizeof *subs.v);  /* the headers may be credentials */
    free(subs.v);
    return more;
}

/* ---- the thread ------------------------------------------------------------------------------- */

/* Waits on n->wake (n->mu held) for ms at most. */
static void wait_ms(struct web_fhir_notify *n, uint64_t ms)
{
    web_timedwait(&n->wake, &n->mu, CLOCK_MONOTONIC, ms);
}

static void *notifier(void *arg)
{
    struct web_fhir_notify *n = arg;
    rows_t *rows = malloc(sizeof *rows);
    if (!rows) {
        fprintf(stderr, "handoff-web: subscriptions: out of memory: nothing is delivered\n");
        return NULL;
    }
    bool more = true;                       /* a first round at once */
    pthread_mutex_lock(&n->mu);
    while (!atomic_load(&n->stopping)) {
        if (!n->kicked && !more)
            wait_ms(n, TICK_MS);
        n->kicked = false;
        if (atomic_load(&n->stopping))
            break;
        pthread_mutex_unlock(&n->mu);       /* kicks come in while endpoints talk */
        more = round_all(n, rows);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    free(rows);
    return NULL;
}

int web_fhir_notify_start(web_t *w)
{
    w->fhir_notify = NULL;
    if (!w->accounts)
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "handoff-web: subscriptions: libcurl did not start\n");
        return -1;
    }
    struct web_fhir_notify *n = calloc(1, sizeof *n);
    if (!n)
        goto fail_curl;
    n->w = w;
    atomic_init(&n->stopping, false);
    if (pthread_mutex_init(&n->mu, NULL) != 0)
        goto fail_alloc;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int crc = pthread_cond_init(&n->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (crc != 0)
        goto fail_mu;
    if (pthread_create(&n->thread, NULL, notifier, n) != 0)
        goto fail_cond;
    w->fhir_notify = n;
    char base[BASE_MAX];
    base_url(w, base, sizeof base);
    fprintf(stderr, "handoff-web: subscriptions: delivering as %s%s\n", base,
            w->cfg.fhir_http_hooks ? " (http:// endpoints allowed)" : "");
    return 0;

fail_cond:
    pthread_cond_destroy(&n->wake);
fail_mu:
    pthread_mutex_destroy(&n->mu);
fail_alloc:
    free(n);
fail_curl:
    fprintf(stderr, "handoff-web: subscriptions: cannot start the notifier\n");
    curl_global_cleanup();
    return -1;
}

void web_fhir_notify_stop(web_t *w)
{
    struct web_fhir_notify *n = w->fhir_notify;
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    atomic_store(&n->stopping, true);
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);          /* a delivery in flight ends within TOTAL_MS */
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->mu);
    free(n->partial);
    free(n);
    w->fhir_notify = NULL;
    curl_global_cleanup();
}

void web_fhir_notify_kick(web_t *w)
{
    struct web_fhir_notify *n = w->fhir_notify;
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->kicked = true;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->mu);
}
