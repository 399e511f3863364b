/* hx_svc — what the three service programs share: their common options, running as a
 * worker, and emitting protobuf outputs and status updates. */
#ifndef HX_SVC_H
#define HX_SVC_H
#include <stdint.h>
#include "hx_opt.h"
#include "hx_worker.h"
#include "referral.pb-c.h"

typedef struct {
    const char *broker;         /* --broker / HANDOFF_BROKER */
    uint32_t credit;            /* --credit / HANDOFF_CREDIT */
    uint32_t heartbeat_ms;      /* --heartbeat-ms / HANDOFF_HEARTBEAT_MS */
    char server_key[41];        /* --server-key FILE / HANDOFF_SERVER_KEY: the broker's public key */
    char public_key[41], secret_key[41];    /* --key FILE / HANDOFF_KEY: this service's pair */
    const char *http;           /* --http HOST:PORT / HANDOFF_HTTP: /metrics, /healthz, /readyz; NULL: off */
    /* The program's metrics (set by main before hx_svc_run, or NULL): its own counters,
     * shown on /metrics with the worker's. Owned by main. */
    hx_metrics_t *metrics;
    /* NULL, or called every tick_ms on the worker's loop (hx_worker_every; set by main):
     * work that time makes possible; it may hx_worker_post */
    void (*tick)(hx_worker_t *w, void *arg);
    void *tick_arg;
    uint64_t tick_ms;
    /* Each delivered burst in one transaction of the program's store (hx_worker_batch_t; set
     * by main, or all NULL: each message on its own). */
    hx_worker_batch_t batch;
} hx_svc_opts_t;

/* Parses argv against the program's own options (extra, n_extra of them; their values in
 * extra_vals) and the common ones, from one option table (hx_opt). -h prints head, the
 * table and tail. Returns 0 to run, 1 to exit 0, 2 on a usage error (already reported). */
int hx_svc_parse(int argc, char **argv, const char *prog, const char *head, const char *tail, const hx_opt_t *extra,
                 size_t n_extra, hx_opt_val_t *extra_vals, hx_svc_opts_t *out);

/* Serves `service` with fn until SIGINT/SIGTERM; reload (may be NULL) on SIGHUP. Returns
 * the process exit code. */
int hx_svc_run(const hx_svc_opts_t *o, const char *prog, const char *service, hx_handler_fn fn, void *arg,
               void (*reload)(hx_worker_t *w, void *arg), void *reload_arg);

/* Packs msg and adds it to the outbox. */
int hx_svc_emit(hx_outbox_t *out, hx_addr_kind_t kind, const char *to, const char *type,
                const ProtobufCMessage *msg);

/* Adds a StatusUpdate for a clinic's mailbox: what happened (event, e.g. "receive",
 * "book"), the status now, why, who did it; refused when a requested change was not made. */
int hx_svc_status(hx_outbox_t *out, const char *clinic, const char *referral_id, const char *ref,
                  Handoff__TaskStatus status, const char *reason, const char *by, Handoff__Booking **bookings,
                  size_t n_bookings, Handoff__TriageDecision *decision, const char *event, bool refused);

/* Replaces a string field of an unpacked message (freeing the old value unless it is
 * protobuf-c's shared empty string). Returns 0 or HX_ENOMEM. */
int hx_pb_set_string(char **field, const char *value);
/* Appends a copy of value to a repeated string field of a message that hx_decision_clear or
 * free_unpacked frees (n counts it). Returns 0 or HX_ENOMEM. */
int hx_pb_add_string(char ***field, size_t *n, const char *value);

/* Wall-clock milliseconds. */
uint64_t hx_svc_now_ms(void);

#endif
