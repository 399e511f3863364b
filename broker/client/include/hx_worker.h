/* hx_worker — serve a service: receive its messages, handle each, ack it together with
 * the messages it produced. Heartbeats, reconnection and signals are handled here. */
#ifndef HX_WORKER_H
#define HX_WORKER_H
#include <stddef.h>
#include <stdint.h>
#include "hx_client.h"
#include "hx_metrics.h"

typedef struct hx_worker hx_worker_t;
typedef struct hx_outbox hx_outbox_t;

/* Handles one message. Add outputs to out; return 0 to ack the input with them, or -1 to
 * nack it (the broker redelivers it) with the reason in err. */
typedef int (*hx_handler_fn)(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap);

/* Optional: the messages the broker delivered together (everything that arrived in one turn
 * of the loop, at most the credit) handled in one transaction of the service's store, so that
 * a burst costs one commit, not one per message. begin is called before the burst's first
 * handler; commit after its last, and returns 0 once the effects of every handler that
 * returned 0 are durable. Only then are the burst's acks (with their outputs) and nacks sent;
 * when begin or commit fails (rollback is called after a failed commit), every message of the
 * burst is nacked with the reason and none of its outputs is sent. A handler that fails must
 * undo its own effects (a savepoint within the transaction), leaving the others'. */
typedef struct {
    int (*begin)(void *arg, char *err, size_t errcap);
    int (*commit)(void *arg, char *err, size_t errcap);
    void (*rollback)(void *arg);
    void *arg;
    /* Optional: 0 once the store can be used again (see HX_WORKER_STORE_DOWN), else -1 with
     * why; without it, begin and rollback are the probe. */
    int (*probe)(void *arg, char *err, size_t errcap);
} hx_worker_batch_t;

/* What begin returns when the store cannot be reached now (a database server restarting or
 * failing over), as opposed to a failure of this burst: nothing is handled and nothing nacked;
 * the worker says BYE, so the broker gives the burst back without counting a failed delivery
 * (no dead letter however long the outage), reports not ready (/readyz says why), and takes no
 * work until the probe succeeds, tried after 100 ms, then at doubling intervals up to 5 s;
 * then it says HELLO again. */
enum { HX_WORKER_STORE_DOWN = -2 };

typedef struct {
    const char *endpoint;
    const char *service;        /* the service name to serve */
    uint32_t credit;            /* messages held at once; 0 = 1 */
    uint32_t heartbeat_ms;      /* 0 = 1000 */
    uint32_t liveness;          /* 0 = 3 */
    /* CURVE (all three, Z85 text, or none): the broker's public key and this worker's pair */
    const char *curve_server_key, *curve_public, *curve_secret;
    /* NULL, or HOST:PORT: serve /metrics, /healthz and /readyz there (ready = a live
     * session with the broker). */
    const char *http;
    /* NULL, or the program's registry (borrowed, outlives the worker): the worker adds its
     * own series (handling latency, results, session) and /metrics shows them all. */
    hx_metrics_t *metrics;
} hx_worker_opts_t;

/* NULL with the reason in err (also when the HTTP address cannot be bound). */
hx_worker_t *hx_worker_new(const hx_worker_opts_t *opts, char *err, size_t errcap);
void hx_worker_destroy(hx_worker_t **self_p);
/* Handles each delivered burst in one transaction (see hx_worker_batch_t). Set before run. */
void hx_worker_set_batch(hx_worker_t *w, const hx_worker_batch_t *b);
/* Calls fn on SIGHUP (e.g. to reload data files); fn may hx_worker_post. */
void hx_worker_on_reload(hx_worker_t *w, void (*fn)(hx_worker_t *w, void *arg), void *arg);
/* Calls fn every period_ms (> 0) while run serves, the first time after min(period_ms,
 * 60 s): work that time makes possible (e.g. retries as days pass); fn may hx_worker_post.
 * Set before run. */
void hx_worker_every(hx_worker_t *w, uint64_t period_ms, void (*fn)(hx_worker_t *w, void *arg), void *arg);
/* Submits one message outside a handler (e.g. work a reload made possible). id makes it
 * exact: posting the same id again stores nothing new. Sent again after a pause while the
 * broker cannot store it, and in the next session when this one is lost before the broker
 * confirmed it (posted while no session is welcomed, it waits for one). */
int hx_worker_post(hx_worker_t *w, const uint8_t id[HX_ID_LEN], hx_addr_kind_t kind, const char *to,
                   const char *type, const void *payload, size_t len);
/* Serves until SIGINT/SIGTERM or hx_worker_stop. Returns 0 on a clean stop. */
int hx_worker_run(hx_worker_t *w, hx_handler_fn fn, void *arg);
/* Asks run to return (from a handler or a reload callback). */
void hx_worker_stop(hx_worker_t *w);

/* Adds an output. Its id is derived from the input's id and its position, so handling the
 * same input again produces the same ids (the broker keeps one). payload is copied. */
int hx_outbox_add(hx_outbox_t *o, hx_addr_kind_t kind, const char *to, const char *type, const void *payload,
                  size_t len);

/* An outbox outside a worker, to call a handler directly (tests, tools): its outputs' ids are
 * derived from input_id (borrowed; set again, outputs dropped, by hx_outbox_reset). NULL when
 * out of memory. */
hx_outbox_t *hx_outbox_new(const uint8_t input_id[HX_ID_LEN]);
void hx_outbox_reset(hx_outbox_t *o, const uint8_t input_id[HX_ID_LEN]);
void hx_outbox_destroy(hx_outbox_t **self_p);

/* The outputs added so far (to store them with the input's effects, so that handling the
 * same input again can replay exactly the same outputs). Pointers valid until the handler
 * returns. */
size_t hx_outbox_count(const hx_outbox_t *o);
int hx_outbox_get(const hx_outbox_t *o, size_t i, hx_addr_kind_t *kind, const char **to, const char **type,
                  const uint8_t **payload, size_t *len);

#endif
