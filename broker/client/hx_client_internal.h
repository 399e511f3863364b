/* hx_client_internal — shared between hx_client.c and hx_worker.c; not for programs. */
#ifndef HX_CLIENT_INTERNAL_H
#define HX_CLIENT_INTERNAL_H
#include <zmq.h>
#include "hx_client.h"

/* Wraps a DELIVER envelope's messages as a batch; takes ownership of env. */
hx_batch_t *hx_batch_from_envelope(Handoff__Envelope *env);

/* How a connection's handshake with the broker went, from libzmq's socket monitor: a refused
 * CURVE key is known at once (ZAP's 400) instead of after a timeout, and libzmq does not
 * retry such a connection. */
typedef enum {
    HX_HANDSHAKE_OTHER,         /* an event that says nothing about the handshake */
    HX_HANDSHAKE_OK,
    HX_HANDSHAKE_DROPPED,       /* the connection closed during the handshake, no reason given */
    HX_HANDSHAKE_REFUSED,       /* refused by the broker's ZAP handler, or a protocol failure */
} hx_handshake_t;

/* After this many DROPPED in a row without an OK, the broker is taken to refuse the
 * handshake: a CURVE broker closes the connection when the client's HELLO was boxed for
 * another server key; a broker that restarts drops at most one. */
#define HX_HANDSHAKE_DROPS_REFUSED 3

/* Starts monitoring sock's handshakes (before its zmq_connect) and returns the PAIR socket that
 * receives the events (to poll, and to close after sock), or NULL. seq makes the inproc address
 * unique in zctx: a new number per socket. */
void *hx_handshake_monitor(void *zctx, void *sock, unsigned seq);
/* What one monitor event (its n frames) says. For REFUSED, and for DROPPED, why is the reason
 * in words; curve_public is this peer's public key (Z85) or "" without CURVE. */
hx_handshake_t hx_handshake_event(const zmq_msg_t *parts, size_t n, const char *curve_public, char *why,
                                  size_t cap);

#endif
