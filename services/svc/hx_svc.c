/* hx_svc — common options, worker run loop and outputs of the service programs. */
#include "hx_svc.h"
#include "hx_curve.h"
#include "hx_http.h"
#include "hx_log.h"
#include "hx_opt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char common_tail[] = "SIGINT or SIGTERM stops after the message in hand; SIGHUP reloads data files.\n";

/* The options every service has, after the program's own. */
enum { C_BROKER, C_CREDIT, C_HEARTBEAT, C_LOG_LEVEL, C_LOG_FORMAT, C_HTTP, C_SERVER_KEY, C_KEY, C_COUNT };
static const hx_opt_t common[C_COUNT] = {
    [C_BROKER] = {"broker", HX_OPT_TEXT, "HANDOFF_BROKER", "tcp://127.0.0.1:5555", 0, 0, "ENDPOINT",
                 "the broker, or ENDPOINT[,ENDPOINT...] (the nodes of a replicated\nbroker)"},
    [C_CREDIT] = {"credit", HX_OPT_U32, "HANDOFF_CREDIT", "32", 1, 1000, "N", "messages held at once, 1..1000"},
    [C_HEARTBEAT] = {"heartbeat-ms", HX_OPT_U32, "HANDOFF_HEARTBEAT_MS", "1000", 10, 60000, "N",
                     "heartbeat interval until the broker sets it"},
    [C_LOG_LEVEL] = {"log-level", HX_OPT_TEXT, "HANDOFF_LOG_LEVEL", "info", 0, 0, "LEVEL", "debug, info, warn, error"},
    [C_LOG_FORMAT] = {"log-format", HX_OPT_TEXT, "HANDOFF_LOG_FORMAT", "text", 0, 0, "FORMAT",
                      "text, or json: one object per line"},
    [C_HTTP] = {"http", HX_OPT_TEXT, "HANDOFF_HTTP", NULL, 0, 0, "HOST:PORT",
                "serve /metrics (Prometheus), /healthz and /readyz (ready: a live\nsession with the broker); "
                "off without it"},
    [C_SERVER_KEY] = {"server-key", HX_OPT_TEXT, "HANDOFF_SERVER_KEY", NULL, 0, 0, "FILE",
                      "CURVE: the broker's public key"},
    [C_KEY] = {"key", HX_OPT_TEXT, "HANDOFF_KEY", NULL, 0, 0, "FILE", "CURVE: this service's secret key"},
};

#define MAX_OPTS 32

int hx_svc_parse(int argc, char **argv, const char *prog, const char *head, const char *tail, const hx_opt_t *extra,
                 size_t n_extra, hx_opt_val_t *extra_vals, hx_svc_opts_t *out)
{
    hx_opt_t all[MAX_OPTS];
    hx_opt_val_t v[MAX_OPTS];
    if (n_extra + C_COUNT > MAX_OPTS)
        return 2;                               /* a programming error: too many options */
    for (size_t i = 0; i < n_extra; i++)
        all[i] = extra[i];
    for (size_t i = 0; i < C_COUNT; i++)
        all[n_extra + i] = common[i];
    char full_tail[2048];
    snprintf(full_tail, sizeof full_tail, "%s%s%s", tail ? tail : "", tail ? "\n" : "", common_tail);
    int rc = hx_opt_parse(prog, all, n_extra + C_COUNT, argc, argv, head, full_tail, v);
    if (rc)
        return rc;
    for (size_t i = 0; i < n_extra; i++)
        extra_vals[i] = v[i];
    const hx_opt_val_t *c = v + n_extra;
    hx_log_level_t lvl;
    if (hx_log_level_parse(c[C_LOG_LEVEL].text, &lvl)) {
        fprintf(stderr, "%s: --log-level: must be debug, info, warn or error\n", prog);
        return 2;
    }
    hx_log_format_t fmt;
    if (hx_log_format_parse(c[C_LOG_FORMAT].text, &fmt)) {
        fprintf(stderr, "%s: --log-format: must be text or json, got '%s'\n", prog, c[C_LOG_FORMAT].text);
        return 2;
    }
    hx_log_init(prog, lvl);
    hx_log_set_format(fmt, prog);
    out->metrics = NULL;
    out->tick = NULL;
    out->tick_arg = NULL;
    out->tick_ms = 0;
    memset(&out->batch, 0, sizeof out->batch);
    out->http = c[C_HTTP].text;
    if (out->http && hx_http_parse_listen(prog, "--http", out->http))
        return 2;
    out->broker = c[C_BROKER].text;
    char why[600];
    if (hx_endpoints_split(out->broker, NULL, why, sizeof why) < 0) {
        fprintf(stderr, "%s: --broker: %s\n", prog, why);
        return 2;
    }
    out->credit = c[C_CREDIT].u32;
    out->heartbeat_ms = c[C_HEARTBEAT].u32;
    const char *server_key = c[C_SERVER_KEY].text, *key = c[C_KEY].text;
    out->server_key[0] = out->public_key[0] = out->secret_key[0] = '\0';
    if (server_key || key) {
        char err[600];
        if (!server_key || !key) {
            fprintf(stderr, "%s: CURVE needs both --server-key and --key\n", prog);
            return 2;
        }
        if (hx_key_load_public(server_key, out->server_key, err, sizeof err) ||
            hx_key_load(key, out->public_key, out->secret_key, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", prog, err);
            return 2;
        }
    }
    return 0;
}

int hx_svc_run(const hx_svc_opts_t *o, const char *prog, const char *service, hx_handler_fn fn, void *arg,
               void (*reload)(hx_worker_t *w, void *arg), void *reload_arg)
{
    char err[256];
    hx_worker_opts_t wo = {.endpoint = o->broker, .service = service, .credit = o->credit,
                           .heartbeat_ms = o->heartbeat_ms, .http = o->http, .metrics = o->metrics};
    if (o->server_key[0]) {
        wo.curve_server_key = o->server_key;
        wo.curve_public = o->public_key;
        wo.curve_secret = o->secret_key;
    }
    hx_worker_t *w = hx_worker_new(&wo, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    hx_worker_on_reload(w, reload, reload_arg);
    hx_worker_set_batch(w, &o->batch);
    if (o->tick && o->tick_ms)
        hx_worker_every(w, o->tick_ms, o->tick, o->tick_arg);
    hx_info("connecting to %s", o->broker);
    int rc = hx_worker_run(w, fn, arg);
    hx_worker_destroy(&w);
    hx_info("stopped");
    return rc == 0 ? 0 : 1;
}

int hx_svc_emit(hx_outbox_t *out, hx_addr_kind_t kind, const char *to, const char *type,
                const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return HX_ENOMEM;
    protobuf_c_message_pack(msg, buf);
    int rc = hx_outbox_add(out, kind, to, type, buf, len);
    free(buf);
    return rc;
}

uint64_t hx_svc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int hx_svc_status(hx_outbox_t *out, const char *clinic, const char *referral_id, const char *ref,
                  Handoff__TaskStatus status, const char *reason, const char *by, Handoff__Booking **bookings,
                  size_t n_bookings, Handoff__TriageDecision *decision, const char *event, bool refused)
{
    Handoff__StatusUpdate s = HANDOFF__STATUS_UPDATE__INIT;
    s.referral_id = (char *)referral_id;
    s.ref = (char *)(ref ? ref : "");
    s.status = status;
    s.reason = (char *)(reason ? reason : "");
    s.by = (char *)by;
    s.at_ms = hx_svc_now_ms();
    s.bookings = bookings;
    s.n_bookings = n_bookings;
    s.decision = decision;
    s.event = (char *)(event ? event : "");
    s.refused = refused;
    return hx_svc_emit(out, HX_TO_MAILBOX, clinic, "handoff.StatusUpdate", &s.base);
}

int hx_pb_set_string(char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return HX_ENOMEM;
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = copy;
    return 0;
}

int hx_pb_add_string(char ***field, size_t *n, const char *value)
{
    char **grown = realloc(*field, (*n + 1) * sizeof *grown);
    if (!grown)
        return HX_ENOMEM;
    *field = grown;
    if (!(grown[*n] = strdup(value)))
        return HX_ENOMEM;
    (*n)++;
    return 0;
}
