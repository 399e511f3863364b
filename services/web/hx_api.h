/* hx_api — the FHIR API's clients, their access tokens and their subscriptions, kept in the
 * accounts store (hx_accounts.h: the same SQLite file, mode 0600, its own tables).
 *
 * A client is an EMR of one clinic: an id (1..64 of [a-z0-9._-]), its clinic, the scopes it may
 * be granted (SMART v1 system scopes: "system/Task.rs system/ServiceRequest.crs ..." — v2
 * letters c r u d s — or v1 ".read" / ".write" / ".*"), and a secret of 32 random bytes shown
 * once (base64url, HX_TOKEN_LEN characters) and stored only as a keyed hash (BLAKE2b,
 * libsodium crypto_generichash, with a key kept in the store); compared in constant time.
 *
 * A token (OAuth 2.0 client credentials: POST /fhir/r4/token) is 32 random bytes (base64url)
 * stored hashed, bound to the client and its clinic, with the scopes granted (the asked ones it
 * may have; all it may have when none are asked), expiring after HX_API_TOKEN_S. Failed
 * secrets hold a client back after 5 in a row, for 5 minutes, as users are.
 *
 * Subscriptions (hx_fhir_sub_t) belong to one client's clinic; each has a cursor: the last
 * message of the clinic's store (hx_clinic_last_seq) its notifications have dealt with. */
#ifndef HX_API_H
#define HX_API_H
#include "hx_accounts.h"
#include "hx_fhir.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HX_API_CLIENT_MAX 64
#define HX_API_SCOPES_MAX 512
#define HX_API_TOKEN_S 300u             /* an access token lives 5 minutes */
#define HX_API_SUBS_MAX 20              /* subscriptions per clinic */

typedef struct {
    char id[HX_API_CLIENT_MAX + 1];
    char clinic[32];
    char scopes[HX_API_SCOPES_MAX];     /* space-separated, as allowed (client) or granted (token) */
    bool disabled;
    uint64_t created_ms;
} hx_api_client_t;

/* Whether scopes (space-separated) are all well-formed: "system/TYPE.PERMS" where TYPE is a
 * resource type of hx_fhir.h or "*", PERMS v2 letters in order (cruds, each at most once) or
 * "read", "write", "*". 0, or -1 with the first bad one in why. */
int hx_api_scopes_check(const char *scopes, char *why, size_t cap);
/* Whether granted (space-separated) allows interaction perm ('c', 'r', 'u', 'd', 's') on
 * resource type (a name of hx_fhir.h). */
bool hx_api_scope_allows(const char *granted, const char *type, char perm);

/* Adds a client of clinic with the scopes it may be granted; secret gets its new secret
 * (NUL-terminated; shown once, never stored). 0, or -1 with why ("id: taken"). */
int hx_api_client_add(hx_accounts_t *a, const char *id, const char *clinic, const char *scopes,
                      char secret[HX_TOKEN_LEN + 1], char *why, size_t cap);
/* A new secret for a client (the old one and its tokens stop working), or disables it (its
 * tokens end). 0, or -1 with why. */
int hx_api_client_reset(hx_accounts_t *a, const char *id, char secret[HX_TOKEN_LEN + 1], char *why, size_t cap);
int hx_api_client_disable(hx_accounts_t *a, const char *id, char *why, size_t cap);
/* Each client (of clinic, or all when NULL), by clinic then id. 0, or -1. */
int hx_api_client_each(hx_accounts_t *a, const char *clinic, void (*fn)(void *ud, const hx_api_client_t *c), void *ud);

typedef enum {
    HX_API_TOKEN_OK = 0,
    HX_API_TOKEN_REFUSED,               /* unknown client, wrong secret, disabled: one answer */
    HX_API_TOKEN_HELD,                  /* too many failures: wait */
    HX_API_TOKEN_SCOPE,                 /* asked for a scope it may not have (why names it) */
    HX_API_TOKEN_ERROR,
} hx_api_token_rc_t;

/* Client credentials: a new access token for client id with secret, granting the asked scopes
 * (space-separated; NULL or "": all the client may have). On HX_API_TOKEN_OK, token is set and
 * grant says the client, clinic, granted scopes; expires_in is HX_API_TOKEN_S. */
hx_api_token_rc_t hx_api_token(hx_accounts_t *a, const char *id, const char *secret, const char *scope,
                               char token[HX_TOKEN_LEN + 1], hx_api_client_t *grant, char *why, size_t cap);
/* The grant of a live token (client, clinic, granted scopes), or -1 (unknown, expired, its
 * client disabled or reset). */
int hx_api_token_check(hx_accounts_t *a, const char *token, hx_api_client_t *grant);

/* ---- subscriptions ---- */

typedef struct {
    hx_fhir_sub_t sub;                  /* id assigned by hx_api_sub_add */
    char client[HX_API_CLIENT_MAX + 1]; /* who made it */
    char clinic[32];
    int64_t cursor;                     /* the last store message dealt with */
    uint32_t failures;                  /* deliveries failed in a row */
    uint64_t next_ms;                   /* no delivery before this (backoff) */
    bool handshake_done;
} hx_api_sub_t;

/* Stores a new subscription (s->sub.id is set: "S-" and 16 hex digits). At most
 * HX_API_SUBS_MAX per clinic. 0, or -1 with why. */
int hx_api_sub_add(hx_accounts_t *a, hx_api_sub_t *s, char *why, size_t cap);
/* The subscription id of clinic, or -1 (none such: another clinic's is none such too). */
int hx_api_sub_get(hx_accounts_t *a, const char *clinic, const char *id, hx_api_sub_t *out);
/* Replaces what a client may change (endpoint, header, payload, end, status off/requested)
 * of clinic's subscription id. 0, or -1 with why. */
int hx_api_sub_update(hx_accounts_t *a, const char *clinic, const char *id, const hx_fhir_sub_t *s, char *why,
                      size_t cap);
int hx_api_sub_delete(hx_accounts_t *a, const char *clinic, const char *id);
/* Each subscription (of clinic; NULL: all), oldest first. */
int hx_api_sub_each(hx_accounts_t *a, const char *clinic, void (*fn)(void *ud, const hx_api_sub_t *s), void *ud);
/* After a delivery attempt: the new cursor, events, status, failures, next attempt, error,
 * handshake. 0, or -1. */
int hx_api_sub_progress(hx_accounts_t *a, const hx_api_sub_t *s);

#endif
