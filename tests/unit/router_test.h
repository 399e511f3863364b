/* router_test — what the router's unit suites (test_router, test_policy) share: a router fed
 * frames by hand, without sockets; every frame it sends, kept decoded; and builders of the
 * envelopes a peer sends. Each suite makes its own router (its config differs) with
 * router_test_capture as the send callback, and calls router_test_clear in its fini. */
#ifndef HX_ROUTER_TEST_H
#define HX_ROUTER_TEST_H
#include <stddef.h>
#include <stdint.h>

#include "hx_router.h"
#include "hx_wire.h"

#define ROUTER_TEST_MAX_SENT 8192

typedef struct {
    char peer[16];
    Handoff__Envelope *env;
} sent_t;

/* What the router sent, in order (sent[0 .. n_sent - 1]). */
extern sent_t sent[ROUTER_TEST_MAX_SENT];
extern size_t n_sent;
/* The suite's router and store. */
extern hx_router_t *router;
extern hx_store_t *store;
/* A peer every send to fails (NULL: none), for an unreachable peer. */
extern const char *send_fails_to;

/* The router's send callback: decodes the frame into sent[] (or fails for send_fails_to). */
int router_test_capture(void *arg, const uint8_t *peer, size_t len, const uint8_t *frame, size_t flen);
/* Frees what sent[] holds and empties it. */
void router_test_clear(void);

/* Packs env and hands it to the router as a frame from peer at time now. */
void feed(const char *peer, const Handoff__Envelope *env, uint64_t now);
/* Message id number n (0 .. 2^24 - 1), and the number back from an id. */
void make_id(uint8_t id[16], int n);
int number_of(const ProtobufCBinaryData *id);
int msg_number(const Handoff__Message *m);
/* HELLO from peer as role, named name, with credit. */
void hello(const char *peer, Handoff__Role role, const char *name, uint32_t credit);
/* The last envelope sent to peer, or NULL. */
Handoff__Envelope *last_to(const char *peer);
/* SUBMIT of message n (`type`, priority prio, a 5-byte payload) from peer to (kind, to) at
 * time now; the last envelope sent to peer after it (its answer, unless a delivery followed). */
Handoff__Envelope *send_msg_at(const char *peer, int n, Handoff__AddressKind kind, const char *to, const char *type,
                               int prio, uint64_t now);
Handoff__Envelope *send_msg(const char *peer, int n, Handoff__AddressKind kind, const char *to, const char *type,
                            int prio);
/* ACK or NACK (kind; a NACK says "test failure") of message n from peer, carrying n_outs
 * outputs; the reply to it (found by its correlation id, not a delivery it made room for),
 * or NULL. */
Handoff__Envelope *ack(const char *peer, Handoff__Kind kind, int n, Handoff__Message **outs, size_t n_outs);

/* NACK of message n from peer at time now, saying why. */
void nack_why(const char *peer, int n, const char *why, uint64_t now);

#endif
