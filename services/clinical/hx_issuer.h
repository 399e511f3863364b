/* hx_issuer — which service issues each clinical type a clinic's mailbox receives: the one
 * table every receiver (the CLI, the portal) checks a message's broker-set sender against
 * before it treats the message as clinical data (docs/PROTOCOL.md, "Receivers"). An
 * authenticated sender is not an authorised one: a clinic, or a service that does not issue
 * the type, is never trusted with it. Pure: no allocation, no state. */
#ifndef HX_ISSUER_H
#define HX_ISSUER_H
#include <stdbool.h>
#include <stddef.h>

/* The services that issue type into mailboxes, as a NULL-terminated list of service names,
 * or NULL when type is not one a clinic's mailbox receives. */
const char *const *hx_issuer_services(const char *type);

/* True when a message of type whose broker-set sender is (from_service, from) — the service
 * from, or the mailbox (clinic) from when from_service is false — may be taken as clinical
 * data: from is a service that issues type. NULL type or from: false. */
bool hx_issuer_trusted(const char *type, bool from_service, const char *from);

/* As hx_issuer_trusted; when not trusted, also writes why (NUL-terminated when cap > 0),
 * e.g. "only service:scheduling issues handoff.Handoff" or "test.echo is not a type a
 * clinic's mailbox receives". Returns 0 when trusted, -1 when not. */
int hx_issuer_check(const char *type, bool from_service, const char *from, char *why, size_t cap);

#endif
