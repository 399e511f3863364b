/* web_hosted — the clinics a portal hosts (see web.h). Each has its own CURVE key and opens
 * its own broker session as that clinic, exactly as the `handoff` CLI does through the same
 * clinic library (hx_clinic): the broker's authorization does not know there is a portal. */
#include "web.h"
#include "web_fhir.h"
#include "hx_curve.h"
#include "web_notify.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

web_hosted_t *web_hosted_find(web_t *w, const char *id, bool reviewer)
{
    for (size_t i = 0; i < w->n_hosted; i++)
        if (w->hosted[i].reviewer == reviewer && (!id || !strcmp(w->hosted[i].id, id)))
            return &w->hosted[i];
    return NULL;
}

int web_hosted_add(web_t *w, const char *spec, bool reviewer, char *err, size_t cap)
{
    const char *opt = reviewer ? "--reviewer" : "--clinic";
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
        snprintf(err, cap, "%s: '%s' is not ID=KEYFILE", opt, spec);
        return -1;
    }
    size_t n = (size_t)(eq - spec);
    if (n >= sizeof w->hosted[0].id) {
        snprintf(err, cap, "%s: the id is longer than %zu characters", opt, sizeof w->hosted[0].id - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!(spec[i] == '-' || spec[i] == '_' || spec[i] == '.' || (spec[i] >= 'a' && spec[i] <= 'z') ||
              (spec[i] >= 'A' && spec[i] <= 'Z') || (spec[i] >= '0' && spec[i] <= '9'))) {
            snprintf(err, cap, "%s: '%.*s' is not a valid id ([A-Za-z0-9._-])", opt, (int)n, spec);
            return -1;
        }
    if (w->n_hosted == WEB_CLINICS_MAX) {
        snprintf(err, cap, "%s: at most %d clinics per portal", opt, WEB_CLINICS_MAX);
        return -1;
    }
    web_hosted_t *h = &w->hosted[w->n_hosted];
    memset(h, 0, sizeof *h);
    memcpy(h->id, spec, n);
    if (web_hosted_find(w, h->id, reviewer)) {
        snprintf(err, cap, "%s: %s is named twice", opt, h->id);
        return -1;
    }
    snprintf(h->key_path, sizeof h->key_path, "%s", eq + 1);
    h->reviewer = reviewer;
    w->n_hosted++;
    return 0;
}

int web_hosted_open(web_t *w, char *err, size_t cap)
{
    char server[HX_KEY_Z85 + 1] = "";
    if (w->cfg.server_key && hx_key_load_public(w->cfg.server_key, server, err, cap) != 0)
        return -1;
    for (size_t i = 0; i < w->n_hosted; i++) {
        web_hosted_t *h = &w->hosted[i];
        char secret[HX_KEY_Z85 + 1] = "", why[4700], from[1200];
        uint8_t sub[32];
        if (w->cfg.server_key && hx_key_load(h->key_path, h->public_key, secret, why, sizeof why) != 0) {
            snprintf(err, cap, "%s %s: %s", h->reviewer ? "--reviewer" : "--clinic", h->id, why);
            return -1;
        }
        hx_clinic_opts_t o = {.broker = w->cfg.broker, .clinic = h->id, .role = h->reviewer ? HX_ROLE_REVIEWER : 0,
                              .home = w->cfg.home, .timeout_ms = 3000};
        if (w->cfg.server_key) {
            o.curve_server = server;
            o.curve_public = h->public_key;
            o.curve_secret = secret;
        }
        if (w->cfg.data_key_bytes) {
            hx_clinic_store_subkey(w->cfg.data_key_bytes, h->id, sub);
            snprintf(from, sizeof from, "--data-key %s (the subkey of %s)", w->cfg.data_key, h->id);
            o.store_key = sub;
            o.store_key_from = from;
        }
        int rc = hx_clinic_open(&o, &h->clinic, why, sizeof why);
        memset(secret, 0, sizeof secret);
        sodium_memzero(sub, sizeof sub);
        if (rc != 0) {
            snprintf(err, cap, "%s: %s", h->id, why);
            return -1;
        }
        if (hx_clinic_sealed_in_place(h->clinic))
            fprintf(stderr, "handoff-web: %s: its store held %zu value(s) in clear: sealed in place with the store "
                            "key (id %s, from %s)\n", h->id, hx_clinic_sealed_in_place(h->clinic),
                    hx_clinic_store_key_id(h->clinic), hx_clinic_store_key_from(h->clinic));
        pthread_mutex_init(&h->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_cond_init(&h->changed, &ca);
        pthread_condattr_destroy(&ca);
        h->version = 1;
    }
    return 0;
}

void web_hosted_close(web_t *w)
{
    for (size_t i = 0; i < w->n_hosted; i++) {
        web_hosted_t *h = &w->hosted[i];
        if (!h->clinic)
            continue;
        hx_clinic_destroy(&h->clinic);
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->changed);
    }
}

void web_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu, clockid_t clock, uint64_t ms)
{
    struct timespec until;
    clock_gettime(clock, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &until);
}

void web_hosted_bump(web_hosted_t *h)
{
    h->version++;
    pthread_cond_broadcast(&h->changed);
}

typedef struct {
    web_t *w;
    web_hosted_t *h;
    size_t fresh;                   /* messages newly stored by this sync */
} sync_ud_t;

/* Each message newly stored: counted (the version moves), and its e-mail notices queued. */
static void count_new(void *ud, const hx_msg_t *m, const char *type, uint64_t at_ms)
{
    (void)at_ms;
    sync_ud_t *u = ud;
    u->fresh++;
    web_notify_message(u->w, u->h, type, m->payload, m->payload_len);
}

static void sync_one(web_t *w, web_hosted_t *h)
{
    sync_ud_t fresh = {.w = w, .h = h};
    hx_clinic_sync_t s = {.on_new = count_new, .ud = &fresh};
    pthread_mutex_lock(&h->mu);
    int rc = hx_clinic_connect(h->clinic);
    if (rc == 0)
        rc = hx_clinic_sync(h->clinic, &s);
    bool was = h->connected && !h->last_error[0];
    h->connected = rc == 0 || hx_clinic_client(h->clinic) != NULL;
    if (rc != 0) {
        if (strcmp(h->last_error, hx_clinic_error(h->clinic)) != 0)
            fprintf(stderr, "handoff-web: %s: %s\n", h->id, hx_clinic_error(h->clinic));
        snprintf(h->last_error, sizeof h->last_error, "%s", hx_clinic_error(h->clinic));
        hx_clinic_disconnect(h->clinic);        /* a new session next time */
        h->connected = false;
    } else {
        if (!was)
            fprintf(stderr, "handoff-web: %s: mailbox in sync\n", h->id);
        h->last_error[0] = '\0';
    }
    if (fresh.fresh)
        web_hosted_bump(h);
    pthread_mutex_unlock(&h->mu);
    if (fresh.fresh)
        web_fhir_notify_kick(w);        /* subscriptions: something new to tell */
}

static void *sync_loop(void *arg)
{
    web_t *w = arg;
    while (!atomic_load(&w->stop)) {
        for (size_t i = 0; i < w->n_hosted && !atomic_load(&w->stop); i++)
            sync_one(w, &w->hosted[i]);
        for (uint32_t slept = 0; slept < w->cfg.sync_ms && !atomic_load(&w->stop); slept += 50)
            nanosleep(&(struct timespec){.tv_nsec = 50 * 1000000L}, NULL);
    }
    return NULL;
}

int web_sync_start(web_t *w)
{
    return pthread_create(&w->syncer, NULL, sync_loop, w) == 0 ? 0 : -1;
}

void web_sync_stop(web_t *w)
{
    atomic_store(&w->stop, true);
    pthread_join(w->syncer, NULL);
}
