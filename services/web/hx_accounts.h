/* hx_accounts — the portal's people (issue: the clinic portal): users of one clinic with a role,
 * network reviewers and admins; passwords hashed with Argon2id (libsodium crypto_pwhash_str);
 * sessions by random tokens of which only a hash is stored, with an idle timeout and an
 * absolute expiry; login throttling per user; CSRF tokens bound to the session (a keyed hash,
 * libsodium crypto_auth, with a key kept in the store). One SQLite file (mode 0600).
 *
 * Times come from a clock the caller may inject (tests); NULL is the real clock. Nothing here
 * prints or logs; refusals say why in words that never name a password or a token. */
#ifndef HX_ACCOUNTS_H
#define HX_ACCOUNTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HX_TOKEN_LEN 43             /* 32 random bytes, base64url without padding */
#define HX_USER_MAX 64              /* a user name: 1..64 of [a-z0-9._@-] */
#define HX_PASSWORD_MIN 12
#define HX_PASSWORD_MAX 1024

typedef enum {
    HX_USER_CLINICIAN = 1,
    HX_USER_FRONT_DESK,
    HX_USER_CLINIC_ADMIN,
    HX_USER_REVIEWER,               /* of the network: the needs-review queue */
    HX_USER_NETWORK_ADMIN,
} hx_user_role_t;

typedef struct {
    char name[HX_USER_MAX + 1];
    char clinic[32];                /* "" for a reviewer or a network admin */
    hx_user_role_t role;
    bool disabled;
} hx_user_t;

typedef struct {
    uint32_t idle_s;                /* a session unused this long ends (0: 900, 15 minutes) */
    uint32_t absolute_s;            /* a session ends this long after login (0: 43200, 12 hours) */
    uint32_t max_failures;          /* failed logins before a user is held back (0: 5) */
    uint32_t hold_s;                /* for this long (0: 300) */
    uint64_t (*clock_ms)(void *arg);/* NULL: the real clock */
    void *clock_arg;
} hx_accounts_config_t;

typedef struct hx_accounts hx_accounts_t;

/* Opens (creating) the store at path. 0, or -1 with why in err. */
int hx_accounts_open(const char *path, const hx_accounts_config_t *cfg, hx_accounts_t **out, char *err, size_t cap);
void hx_accounts_close(hx_accounts_t **self_p);

/* "clinician", "front-desk", "clinic-admin", "reviewer", "network-admin" and back (0: unknown). */
const char *hx_user_role_text(hx_user_role_t r);
hx_user_role_t hx_user_role_from_text(const char *s);

/* Adds a user: a valid name not taken, a clinic id for the clinic roles ("" for the network's),
 * a password of HX_PASSWORD_MIN..HX_PASSWORD_MAX bytes. 0, or -1 with why ("name: taken"). */
int hx_user_add(hx_accounts_t *a, const char *name, const char *clinic, hx_user_role_t role, const char *password,
                char *why, size_t cap);
/* Disables a user and ends its sessions. 0, or -1 with why. */
int hx_user_disable(hx_accounts_t *a, const char *name, char *why, size_t cap);
/* Sets a new password (and enables the user), ends its sessions, clears its failures. */
int hx_user_reset(hx_accounts_t *a, const char *name, const char *password, char *why, size_t cap);

typedef enum { HX_LOGIN_OK = 0, HX_LOGIN_REFUSED, HX_LOGIN_HELD, HX_LOGIN_ERROR } hx_login_t;

/* Checks a password and opens a session: HX_LOGIN_OK with a new token (NUL-terminated) and the
 * user; HX_LOGIN_REFUSED for an unknown user, a wrong password or a disabled user alike (one
 * answer, so names cannot be probed); HX_LOGIN_HELD after max_failures in a row, until hold_s
 * passes (a right password does not get in meanwhile). */
hx_login_t hx_login(hx_accounts_t *a, const char *name, const char *password, char token[HX_TOKEN_LEN + 1],
                    hx_user_t *user);
/* The user of a live session (and it is used now: the idle timer starts again). 0, or -1 when
 * the token is unknown, ended, idle too long, past its absolute expiry or its user disabled. */
int hx_session_user(hx_accounts_t *a, const char *token, hx_user_t *user);
/* hx_session_user without using the session (its idle timer goes on): for a live page's
 * event stream, which must not keep an idle session alive. */
int hx_session_peek(hx_accounts_t *a, const char *token, hx_user_t *user);
/* Ends a session (unknown tokens are ignored). */
void hx_logout(hx_accounts_t *a, const char *token);

/* The CSRF token of a session, for its forms (NUL-terminated), and its check. */
void hx_csrf_token(const hx_accounts_t *a, const char *session, char out[HX_TOKEN_LEN + 1]);
bool hx_csrf_ok(const hx_accounts_t *a, const char *session, const char *csrf);

/* Each user of clinic (NULL: every user), by clinic then name. 0, or -1. */
int hx_user_each(hx_accounts_t *a, const char *clinic, void (*fn)(void *ud, const hx_user_t *u), void *ud);

/* One audit line: who viewed or did what to which referral (PHIPA: access is logged, not only
 * changes). Ids and words of the portal's own only: never a patient's detail. */
typedef struct {
    uint64_t at_ms;                 /* 0: now */
    const char *user, *clinic, *action, *referral_id, *detail, *address;
} hx_audit_t;
int hx_audit(hx_accounts_t *a, const hx_audit_t *e);
/* The latest lines, newest first, of clinic and/or referral_id (NULL: any), at most limit. */
int hx_audit_each(hx_accounts_t *a, const char *clinic, const char *referral_id, size_t limit,
                  void (*fn)(void *ud, const hx_audit_t *e), void *ud);

#endif
