/* hx_client — the library every program links to talk to the broker: a synchronous
 * client (clinics, tools) and, in hx_worker.h, a worker that serves a service. Programs
 * that use it never call zmq_* or uv_* themselves. */
#ifndef HX_CLIENT_H
#define HX_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hx_wire.h"

typedef enum { HX_TO_SERVICE = 1, HX_TO_MAILBOX = 2 } hx_addr_kind_t;

/* One message. To send: fill id, to_kind, to, type, payload. Delivered messages also carry
 * from_kind, from, attempt and accepted_at_ms; their pointers stay valid as long as the
 * batch that holds them. */
typedef struct {
    uint8_t id[HX_ID_LEN];
    hx_addr_kind_t to_kind;
    const char *to;
    hx_addr_kind_t from_kind;
    const char *from;
    const char *type;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *correlation_id;      /* NULL or HX_ID_LEN bytes */
    uint32_t attempt;
    uint64_t accepted_at_ms;
    /* 0 routine, 1 urgent, 2 asap, 3 stat (docs/PROTOCOL.md, "Fair share"): set on submit;
     * on receipt, what the broker stored */
    uint32_t priority;
    const char *origin;                 /* on receipt: whom the work is for, e.g. "clinic:northpoint" */
} hx_msg_t;

/* Messages received in one reply; free with hx_batch_destroy. */
typedef struct {
    size_t count;
    hx_msg_t *msgs;
    void *priv;
} hx_batch_t;
void hx_batch_destroy(hx_batch_t **self_p);

typedef struct hx_client hx_client_t;

typedef enum { HX_ROLE_CLINIC = 1, HX_ROLE_ADMIN = 3, HX_ROLE_REVIEWER = 4 } hx_role_t;

typedef struct {
    /* e.g. "tcp://127.0.0.1:5555"; a replicated broker: its nodes' endpoints, comma-separated
     * (at most HX_ENDPOINTS_MAX), and the client follows the leader (docs/PROTOCOL.md) */
    const char *endpoint;
    const char *clinic;         /* this clinic's id: the session's name and mailbox (the
                                   operator's name for HX_ROLE_ADMIN) */
    hx_role_t role;             /* 0 = HX_ROLE_CLINIC */
    /* CURVE (all three, Z85 text, or none): the broker's public key and this peer's pair */
    const char *curve_server_key, *curve_public, *curve_secret;
    int timeout_ms;             /* per attempt; 0 = 3000 */
    int attempts;               /* 0 = 3; each retry uses a fresh connection */
} hx_client_opts_t;

/* Connects and opens a clinic session (HELLO/WELCOME): 0 with the client in *out, or NULL in
 * *out, the reason in err and HX_ETIMEDOUT (no answer in `attempts` tries), HX_EDENIED (the
 * broker refused this key at the CURVE handshake, the handshake failed, or the key may not
 * open this session: known at once, not retried), HX_EREFUSED (another refusal of the HELLO),
 * HX_EINVAL (the options or the endpoint), HX_ENOMEM or HX_EIO. */
int hx_client_open(const hx_client_opts_t *opts, hx_client_t **out, char *err, size_t errcap);
/* hx_client_open for callers that need no code: the client, or NULL with the reason in err. */
hx_client_t *hx_client_connect(const hx_client_opts_t *opts, char *err, size_t errcap);
/* Says BYE (the broker puts back what was fetched and not acked), closes, NULLs. */
void hx_client_destroy(hx_client_t **self_p);

/* Every request below may also return HX_EDENIED: the connection was lost and the new one's
 * handshake or HELLO was refused (the key was taken out of the allow-list meanwhile).
 *
 * Submits n messages (1..HX_MAX_BATCH) in one request and waits until the broker has
 * accepted all of them. Safe to repeat: the broker keeps one message per id. Returns 0, or
 * HX_EREFUSED (see hx_client_error), HX_ETIMEDOUT, HX_EINVAL. */
int hx_client_submit(hx_client_t *c, const hx_msg_t *msgs, size_t n);
/* Submits n messages, one request each, with up to `window` requests outstanding (a
 * pipeline). ERR_BUSY (a full queue, or this clinic over its share) is waited out: the
 * refused ones are sent again after a pause (50 ms doubling to 2 s), for up to 2 minutes
 * without progress. Returns 0 when all are accepted; on another refusal (or a busy broker
 * that long) returns HX_EREFUSED with *failed set to its index. */
int hx_client_submit_many(hx_client_t *c, const hx_msg_t *msgs, size_t n, size_t window, size_t *failed);
/* Fetches up to max (1..HX_MAX_BATCH) messages from this clinic's mailbox. They stay in
 * the mailbox until acked. *out is an empty batch when there is nothing. */
int hx_client_fetch(hx_client_t *c, uint32_t max, hx_batch_t **out);
/* Acks fetched messages by id: the broker deletes them. */
int hx_client_ack(hx_client_t *c, const uint8_t (*ids)[HX_ID_LEN], size_t n);

/* A dead letter: a message that failed max-attempts times, with the last error. */
typedef struct {
    hx_msg_t msg;               /* payload set only by hx_client_dlq_show */
    const char *reason;
    uint32_t attempts;
    uint64_t dead_at_ms;
} hx_dead_t;

typedef struct {
    size_t count;
    hx_dead_t *items;
    void *priv;
} hx_dead_list_t;
void hx_dead_list_destroy(hx_dead_list_t **self_p);

/* Admin sessions only. list: every dead letter without payloads; show: one, with its
 * payload; replay: back to its queue with its attempts reset (the same id, so at most
 * once more); purge: deleted. An id not in the dead-letter queue is HX_EREFUSED with
 * ERR_UNKNOWN_MESSAGE. */
int hx_client_dlq_list(hx_client_t *c, hx_dead_list_t **out);
int hx_client_dlq_show(hx_client_t *c, const uint8_t id[HX_ID_LEN], hx_dead_list_t **out);
int hx_client_dlq_replay(hx_client_t *c, const uint8_t id[HX_ID_LEN]);
int hx_client_dlq_purge(hx_client_t *c, const uint8_t id[HX_ID_LEN]);

/* 0 when the broker can accept messages; HX_EREFUSED (with the reason in hx_client_error)
 * when it cannot write its log. Any session. */
int hx_client_health(hx_client_t *c);
/* The broker's counters as one JSON object (the "stats" admin op; shape in docs/PROTOCOL.md):
 * 0 and a malloc'd NUL-terminated string in *json_out that the caller frees, or an HX_E*
 * error as for hx_client_health (*json_out NULL). Everything to an admin session; a clinic
 * session gets its own mailbox only ("scope":"own"). */
int hx_client_stats(hx_client_t *c, char **json_out);

/* An admin op with a text argument (a replicated broker's "cluster.status", "cluster.add",
 * "cluster.remove", "cluster.transfer"; docs/PROTOCOL.md): 0 and the reply's text (malloc'd,
 * the caller frees) in *text_out, or an HX_E* error as for hx_client_health. Admin sessions. */
int hx_client_admin_text(hx_client_t *c, const char *op, const char *text, char **text_out);

/* The broker's last error for this client: code and text ("" when none). */
Handoff__ErrorCode hx_client_error_code(const hx_client_t *c);
const char *hx_client_error(const hx_client_t *c);
/* The endpoint of the node the client's session is with (or is to be opened with next): the
 * endpoint given, or one of the list's. */
const char *hx_client_endpoint(const hx_client_t *c);

#endif
