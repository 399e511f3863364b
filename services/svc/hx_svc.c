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

static const char common_usage[] =
    "common options (each also from the environment variable shown):\n"
    "  --broker ENDPOINT     the broker [HANDOFF_BROKER, default tcp://127.0.0.1:5555]\n"
    "  --credit N            messages held at once, 1..1000 [HANDOFF_CREDIT, 8]\n"
    "  --heartbeat-ms N      heartbeat interval until the broker sets it [HANDOFF_HEARTBEAT_MS, 1000]\n"
    "  --log-level LEVEL     debug, info, warn, error [HANDOFF_LOG_LEVEL, info]\n"
    "  --log-format FORMAT   text, or json: one object per line [HANDOFF_LOG_FORMAT, text]\n"
    "  --http HOST:PORT      serve /metrics (Prometheus), /healthz and /readyz (ready: a live\n"
    "                        session with the broker) [HANDOFF_HTTP, default off]\n"
    "  --server-key FILE     CURVE: the broker's public key [HANDOFF_SERVER_KEY]\n"
    "  --key FILE            CURVE: this service's secret key [HANDOFF_KEY]\n"
    "  -h, --help            this text\n"
    "SIGINT or SIGTERM stops after the message in hand; SIGHUP reloads data files.\n";

enum { OPT_BROKER = 1000, OPT_CREDIT, OPT_HEARTBEAT, OPT_LOG, OPT_SERVER_KEY, OPT_KEY, OPT_HTTP, OPT_LOG_FORMAT };

int hx_svc_parse(int argc, char **argv, const char *prog, const char *usage, const struct option *extra,
                 hx_svc_opt_fn on_extra, void *ctx, hx_svc_opts_t *out)
{
    struct option opts[32];
    size_t n = 0;
    opts[n++] = (struct option){"broker", required_argument, NULL, OPT_BROKER};
    opts[n++] = (struct option){"credit", required_argument, NULL, OPT_CREDIT};
    opts[n++] = (struct option){"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT};
    opts[n++] = (struct option){"log-level", required_argument, NULL, OPT_LOG};
    opts[n++] = (struct option){"server-key", required_argument, NULL, OPT_SERVER_KEY};
    opts[n++] = (struct option){"key", required_argument, NULL, OPT_KEY};
    opts[n++] = (struct option){"http", required_argument, NULL, OPT_HTTP};
    opts[n++] = (struct option){"log-format", required_argument, NULL, OPT_LOG_FORMAT};
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    for (size_t i = 0; extra && extra[i].name && n < 31; i++)
        opts[n++] = extra[i];
    opts[n] = (struct option){NULL, 0, NULL, 0};

    const char *broker = NULL, *credit = NULL, *hb = NULL, *level = NULL, *server_key = NULL, *key = NULL,
               *http = NULL, *format = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_BROKER: broker = optarg; break;
        case OPT_CREDIT: credit = optarg; break;
        case OPT_HEARTBEAT: hb = optarg; break;
        case OPT_LOG: level = optarg; break;
        case OPT_SERVER_KEY: server_key = optarg; break;
        case OPT_KEY: key = optarg; break;
        case OPT_HTTP: http = optarg; break;
        case OPT_LOG_FORMAT: format = optarg; break;
        case 'h': printf("%s\n%s", usage, common_usage); return 1;
        case '?': fprintf(stderr, "%s: see --help\n", prog); return 2;
        default:
            if (!on_extra || on_extra(ctx, c, optarg))
                return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[optind]);
        return 2;
    }
    hx_log_level_t lvl;
    if (hx_log_level_parse(hx_opt_pick(level, "HANDOFF_LOG_LEVEL", "info"), &lvl)) {
        fprintf(stderr, "%s: --log-level: must be debug, info, warn or error\n", prog);
        return 2;
    }
    hx_log_format_t fmt;
    format = hx_opt_pick(format, "HANDOFF_LOG_FORMAT", "text");
    if (hx_log_format_parse(format, &fmt)) {
        fprintf(stderr, "%s: --log-format: must be text or json, got '%s'\n", prog, format);
        return 2;
    }
    hx_log_init(prog, lvl);
    hx_log_set_format(fmt, prog);
    out->metrics = NULL;
    out->http = hx_opt_pick(http, "HANDOFF_HTTP", NULL);
    if (out->http && hx_http_parse_listen(prog, "--http", out->http))
        return 2;
    out->broker = hx_opt_pick(broker, "HANDOFF_BROKER", "tcp://127.0.0.1:5555");
    if (hx_opt_u32(prog, "--credit", hx_opt_pick(credit, "HANDOFF_CREDIT", "8"), 1, 1000, &out->credit) ||
        hx_opt_u32(prog, "--heartbeat-ms", hx_opt_pick(hb, "HANDOFF_HEARTBEAT_MS", "1000"), 10, 60000,
                   &out->heartbeat_ms))
        return 2;
    server_key = hx_opt_pick(server_key, "HANDOFF_SERVER_KEY", NULL);
    key = hx_opt_pick(key, "HANDOFF_KEY", NULL);
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
