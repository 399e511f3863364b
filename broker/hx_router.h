/* hx_router — the broker's protocol logic without sockets: sessions, service queues with
 * load-balanced workers and credit, clinic mailboxes, acks, heartbeats and redelivery.
 * It is fed frames and the time, and sends frames through a callback, so it is unit-tested
 * without ZeroMQ. */
#ifndef HX_ROUTER_H
#define HX_ROUTER_H
#include <stddef.h>
#include <stdint.h>
#include "hx_store.h"

typedef struct hx_router hx_router_t;

/* Sends one frame to the peer with routing id `peer`. Returns 0, or -1 when the peer is
 * gone (the router then ends its session). */
typedef int (*hx_router_send_fn)(void *arg, const uint8_t *peer, size_t peer_len, const uint8_t *frame,
                                 size_t len);

typedef struct {
    hx_router_send_fn send;
    void *send_arg;
    hx_store_t *store;          /* borrowed */
    uint32_t heartbeat_ms;      /* default 1000 */
    uint32_t liveness;          /* missed heartbeats before a peer is dead; default 3 */
    uint32_t max_frame;         /* default HX_DEFAULT_MAX_FRAME */
    uint32_t max_queue;         /* messages per queue or mailbox before ERR_BUSY; default 100000 */
    uint32_t max_queues;        /* services + mailboxes; default 10000 */
    uint32_t dedup_window;      /* ids remembered to make resubmits exact; default 100000 */
} hx_router_config_t;

typedef struct {
    uint64_t accepted, duplicates, delivered, acked, nacked, redelivered, refused;
    uint64_t peers, workers, clinics;
} hx_router_stats_t;

hx_router_t *hx_router_new(const hx_router_config_t *cfg);
/* Settles and frees everything; NULLs the pointer. */
void hx_router_destroy(hx_router_t **self_p);

/* One frame from a peer, at time now_ms (ms, monotonic). Never trusts the frame. */
void hx_router_on_frame(hx_router_t *r, const uint8_t *peer, size_t peer_len, const uint8_t *frame, size_t len,
                        uint64_t now_ms);
/* A message of `frames` frames (not 1) from a peer: refused with ERR_MALFORMED. */
void hx_router_on_bad_frames(hx_router_t *r, const uint8_t *peer, size_t peer_len, size_t frames, uint64_t now_ms);
/* Heartbeats out, expired peers ended (their messages go back to their queues). Call
 * every heartbeat interval or more often. */
void hx_router_tick(hx_router_t *r, uint64_t now_ms);
/* Sends BYE to every peer (before a clean shutdown). */
void hx_router_goodbye(hx_router_t *r);

/* Messages waiting (not in flight) and in flight for a service ("service") or a mailbox
 * ("mailbox"); -1 when that queue does not exist. */
long hx_router_depth(const hx_router_t *r, const char *kind, const char *name, long *inflight);
void hx_router_stats(const hx_router_t *r, hx_router_stats_t *out);

#endif
