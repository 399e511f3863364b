/* hx_client_internal — shared between hx_client.c and hx_worker.c; not for programs. */
#ifndef HX_CLIENT_INTERNAL_H
#define HX_CLIENT_INTERNAL_H
#include "hx_client.h"

/* Wraps a DELIVER envelope's messages as a batch; takes ownership of env. */
hx_batch_t *hx_batch_from_envelope(Handoff__Envelope *env);

#endif
