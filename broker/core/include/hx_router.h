/* hx_router — the broker's protocol logic without sockets: sessions, service queues with
 * load-balanced workers and credit, clinic mailboxes, acks, heartbeats and redelivery.
 * It is fed frames with the monotonic time of each (heartbeats, backoff and ack timeouts run
 * on that), reads the wall clock only to stamp accepted_at_ms and dead_at_ms and for the
 * statistics' ages and uptime, and sends frames through a callback, so it is unit-tested
 * without ZeroMQ. */
#ifndef HX_ROUTER_H
#define HX_ROUTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hx_policy.h"
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
    uint64_t max_queue_bytes;   /* message bytes per queue or mailbox before ERR_BUSY; default 256 MiB */
    uint32_t max_attempts;      /* failed deliveries before the dead-letter queue; default 5 */
    uint32_t backoff_ms;        /* delay after the first failure, doubling each time; default 500 */
    uint32_t backoff_max_ms;    /* cap on that delay; default 60000 */
    uint32_t ack_timeout_ms;    /* a worker holding a message longer has failed it; default 30000 */
    /* Percent of max_queue and of max_queue_bytes that one origin (a clinic, with all the
     * work done for it) may hold in the service queues together; default 25, 100: no bound
     * beyond the queue's own. */
    uint32_t sender_share;
    /* Who may send what where (borrowed, outlives the router); NULL: the built-in table. */
    const hx_policy_t *policy;
    /* With CURVE: whether an authenticated principal is still allowed (the allow-list may
     * have been reloaded since its connection's handshake). NULL: always. */
    bool (*principal_allowed)(void *arg, const char *principal);
    void *principal_arg;
    /* Records an access or a refusal (the audit log); NULL: none. id is a message id in
     * hex or "". Never given clinical content. */
    void (*audit)(void *arg, const char *principal, const char *action, const char *id, const char *outcome);
    void *audit_arg;
    /* A replicated broker's membership ops ("cluster.*", an admin session only, with the
     * request's text): 0 and the reply's text (NUL-terminated) in out, HX_EINVAL (a bad
     * field: why) or HX_EREFUSED (not now: why). NULL: a single broker, which refuses them. */
    int (*cluster_admin)(void *arg, const char *op, const char *text, hx_buf_t *out, char *why, size_t cap);
    void *cluster_arg;
} hx_router_config_t;

/* Refusals are counted per wire error code, 0..HX_ROUTER_CODES-1 (an unknown code counts as 0). */
#define HX_ROUTER_CODES 16

typedef struct {
    uint64_t accepted, duplicates, delivered, acked, nacked, redelivered, refused, dead_lettered;
    uint64_t refused_by_code[HX_ROUTER_CODES];  /* ERROR replies by Handoff__ErrorCode */
    uint64_t expired;           /* sessions ended because their heartbeats stopped */
    uint64_t peers, workers, clinics, admins;   /* sessions now, by role */
    uint64_t dead;              /* in the dead-letter queue now */
    uint64_t delayed;           /* waiting out a backoff now */
    uint64_t uptime_ms;         /* since hx_router_new */
    uint64_t held_bytes;        /* of every message held, dead letters included */
    uint64_t dead_pinned_bytes; /* log bytes the oldest dead letter keeps on disk (see pinned_bytes) */
} hx_router_stats_t;

/* One service queue or mailbox, as hx_router_foreach_queue shows it. */
typedef struct {
    bool mailbox;               /* false: a service queue */
    const char *name;
    uint64_t depth;             /* waiting to be delivered (not in flight, not delayed) */
    uint64_t inflight;          /* delivered, not acked */
    uint64_t bytes;             /* of every message the queue holds (not dead letters) */
    uint64_t oldest_age_ms;     /* age of the message at the head of the queue; 0 when empty */
    uint64_t workers;           /* service queues: workers connected */
    uint64_t in_total;          /* accepted into it since the broker started */
    uint64_t out_total;         /* acked (or purged) out of it since the broker started */
    /* Bytes of the log from the segment its oldest message is in to the end: what it keeps on
     * disk until that message is settled or compaction moves it (refreshed every 5 s). */
    uint64_t pinned_bytes;
} hx_queue_info_t;

/* The router takes the store's on_commit and dedup_ids hooks. */
hx_router_t *hx_router_new(const hx_router_config_t *cfg);
/* Rebuilds queues, mailboxes, the dead-letter queue and the dedup set from the store.
 * Call once, before the first frame. Returns 0 or the store's error. */
int hx_router_recover(hx_router_t *r);
/* Starts making what this loop pass changed durable (call once per loop pass). */
void hx_router_flush(hx_router_t *r);
/* Settles and frees everything; NULLs the pointer. */
void hx_router_destroy(hx_router_t **self_p);

/* One frame from a peer, at time now_ms (ms, monotonic). Never trusts the frame. */
void hx_router_on_frame(hx_router_t *r, const uint8_t *peer, size_t peer_len, const uint8_t *frame, size_t len,
                        uint64_t now_ms);
/* The same, from a peer whose key authenticated it as principal ("clinic:<id>",
 * "service:<name>", "admin:<name>"; NULL without CURVE): its HELLO may claim only that. */
void hx_router_on_frame_from(hx_router_t *r, const uint8_t *peer, size_t peer_len, const char *principal,
                             const uint8_t *frame, size_t len, uint64_t now_ms);
/* A message of `frames` frames (not 1) from a peer: refused with ERR_MALFORMED. */
void hx_router_on_bad_frames(hx_router_t *r, const uint8_t *peer, size_t peer_len, size_t frames, uint64_t now_ms);
/* Heartbeats out, expired peers ended (their messages go back to their queues). Call
 * every heartbeat interval or more often. */
void hx_router_tick(hx_router_t *r, uint64_t now_ms);
/* Ends every session whose principal is no longer allowed (after an allow-list reload). */
void hx_router_recheck(hx_router_t *r);
/* Sends BYE to every peer (before a clean shutdown). */
void hx_router_goodbye(hx_router_t *r);

/* Messages waiting (not in flight, not delayed) and in flight for a service ("service") or a mailbox
 * ("mailbox"); -1 when that queue does not exist. */
long hx_router_depth(const hx_router_t *r, const char *kind, const char *name, long *inflight);
void hx_router_stats(const hx_router_t *r, hx_router_stats_t *out);
/* Calls fn for every service queue and mailbox (names valid only during the call). */
void hx_router_foreach_queue(const hx_router_t *r, void (*fn)(void *arg, const hx_queue_info_t *q), void *arg);
/* The reply to the "stats" admin op: one JSON object (docs/PROTOCOL.md) in out, replacing
 * its contents, NUL-terminated (the NUL not counted in out->len). 0 or HX_ENOMEM. */
int hx_router_stats_json(const hx_router_t *r, hx_buf_t *out);

#endif
