/* hx_accounts — the portal's people (issue: the clinic portal): users of one clinic with a role,
 * network reviewers and admins; passwords hashed with Argon2id (libsodium crypto_pwhash_str);
 * sessions by random tokens of which only a hash is stored, with an idle timeout and an
 * absolute expiry; login throttling per user; CSRF tokens bound to the session (a keyed hash,
 * libsodium crypto_auth, with a key kept in the store). One store: a SQLite file (mode 0600,
 * the default) or PostgreSQL (hx_db.h: the schema "accounts"), so that several portals may
 * share their users and sessions.
 *
 * A clinic (or the network, for its reviewers and admins) may require a second factor: TOTP
 * (RFC 6238, hx_totp.h), each user's secret sealed with a key kept in the store
 * (crypto_secretbox); between the password and the code a sign-in is pending, known by a
 * random token of which only a hash is stored, for HX_PENDING_S.
 *
 * A user may give an e-mail address and choose which notices to get; the notices wait in an
 * outbox table of the same store until they are sent (handoff-web's web_notify.c sends them).
 *
 * Times come from a clock the caller may inject (tests); NULL is the real clock. Nothing here
 * prints or logs; refusals say why in words that never name a password or a token. */
#ifndef HX_ACCOUNTS_H
#define HX_ACCOUNTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hx_db.h"     /* hx_metrics_t */
#include "hx_totp.h"

#define HX_TOKEN_LEN 43             /* 32 random bytes, base64url without padding */
#define HX_USER_MAX 64              /* a user name: 1..64 of [a-z0-9._@-] */
#define HX_PASSWORD_MIN 12
#define HX_PASSWORD_MAX 1024
#define HX_PENDING_S 300            /* a sign-in waits this long for its second factor */

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

/* Opens (creating) the store at where: a SQLite file's path (or sqlite:PATH) or a PostgreSQL
 * URL (postgresql://…). Its schema is brought up to date; a store a newer program wrote is
 * refused. 0, or -1 with why in err. One handle, one thread at a time. */
int hx_accounts_open(const char *where, const hx_accounts_config_t *cfg, hx_accounts_t **out, char *err, size_t cap);
void hx_accounts_close(hx_accounts_t **self_p);
/* Whether the store answers now (PostgreSQL: connecting again when it was lost). 0, or -1
 * with why. */
int hx_accounts_ready(hx_accounts_t *a, char *err, size_t cap);
/* The store's figures on m, labelled store="accounts" (hx_db_metrics). */
int hx_accounts_metrics(hx_accounts_t *a, hx_metrics_t *m);

/* "clinician", "front-desk", "clinic-admin", "reviewer", "network-admin" and back (0: unknown). */
const char *hx_user_role_text(hx_user_role_t r);
hx_user_role_t hx_user_role_from_text(const char *s);

/* Adds a user: a valid name not taken, a clinic id for the clinic roles ("" for the network's),
 * a password of HX_PASSWORD_MIN..HX_PASSWORD_MAX bytes. 0, or -1 with why ("name: taken"). */
int hx_user_add(hx_accounts_t *a, const char *name, const char *clinic, hx_user_role_t role, const char *password,
                char *why, size_t cap);
/* Disables a user and ends its sessions. 0, or -1 with why. */
int hx_user_disable(hx_accounts_t *a, const char *name, char *why, size_t cap);
/* Sets a new password (and enables the user), ends its sessions, clears its failures and its
 * second factor (the user enrols again at the next sign-in when the clinic requires one). */
int hx_user_reset(hx_accounts_t *a, const char *name, const char *password, char *why, size_t cap);

typedef enum {
    HX_LOGIN_OK = 0,
    HX_LOGIN_REFUSED,
    HX_LOGIN_HELD,
    HX_LOGIN_ERROR,
    HX_LOGIN_TOTP,                  /* the password was right; the second factor is next */
    HX_LOGIN_EXPIRED,               /* the pending sign-in is unknown or too old: start again */
} hx_login_t;

/* Checks a password and opens a session: HX_LOGIN_OK with a new token (NUL-terminated) and the
 * user; HX_LOGIN_REFUSED for an unknown user, a wrong password or a disabled user alike (one
 * answer, so names cannot be probed); HX_LOGIN_HELD after max_failures in a row, until hold_s
 * passes (a right password does not get in meanwhile). When the user's clinic requires a
 * second factor: HX_LOGIN_TOTP with no session, token then a pending sign-in's (hx_pending,
 * hx_login_totp); the failures so far are not forgotten until the code is right too. */
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

/* ---- the second factor ---- */

/* Requires (on) or stops requiring TOTP for the users of clinic ("": the network's reviewers
 * and admins). Turning it on ends those users' sessions, so each signs in again with a code.
 * Enrolments are kept when it is turned off. 0, or -1 with why. */
int hx_totp_policy_set(hx_accounts_t *a, const char *clinic, bool on, char *why, size_t cap);
/* 1 when clinic ("": the network) requires TOTP, 0 when not, -1 when the store failed. */
int hx_totp_policy(hx_accounts_t *a, const char *clinic);
/* 1 when the user has a confirmed TOTP secret, 0 when not, -1 when the store failed. */
int hx_totp_enrolled(hx_accounts_t *a, const char *name);

typedef struct {
    hx_user_t user;
    uint64_t expires_ms;
    bool enrolling;                 /* no second factor yet: the new secret below is to be shown */
    char secret_base32[HX_TOTP_BASE32_LEN + 1];     /* enrolling only; wipe after use */
    char uri[HX_TOTP_URI_MAX];                      /* otpauth://, enrolling only; wipe after use */
} hx_pending_t;

/* The pending sign-in of token: 0 with its user and, while the user enrols, the secret to show
 * (the same one until the code confirms it or the sign-in expires; never again after). -1 when
 * the token is unknown, older than HX_PENDING_S or its user disabled. */
int hx_pending(hx_accounts_t *a, const char *token, hx_pending_t *p);
/* The second step: HX_LOGIN_OK with a new session token when code is the user's current one
 * (now's step or one either side, and later than any code accepted before: a code is never
 * accepted twice); an enrolling user's secret is kept from then on; the pending sign-in ends.
 * HX_LOGIN_REFUSED for a wrong, old or replayed code (a failed login, as a wrong password);
 * HX_LOGIN_HELD once the user is held (the pending sign-in ends); HX_LOGIN_EXPIRED; or
 * HX_LOGIN_ERROR. */
hx_login_t hx_login_totp(hx_accounts_t *a, const char *pending, const char *code, char token[HX_TOKEN_LEN + 1],
                         hx_user_t *user);
/* Ends a pending sign-in (unknown tokens are ignored). */
void hx_pending_end(hx_accounts_t *a, const char *token);

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

/* ---- e-mail notices ---- */

/* A user's e-mail address (for notices) and which notices the user wants. An address is
 * plain ASCII, 3..HX_EMAIL_MAX bytes, one '@' with something either side, a domain of
 * dot-separated labels of letters, digits and '-', no space, control character, CR, LF or any
 * of <>()[]\,;:" — so it can never end a header line or add a recipient. */
#define HX_EMAIL_MAX 254
typedef enum {
    HX_NOTIFY_HANDOFF = 1u,         /* "new": a new handoff for the user's clinic */
    HX_NOTIFY_QUESTION = 2u,        /* "question": a question awaits the clinic's reply */
    HX_NOTIFY_STATUS = 4u,          /* "status": a referral's status changed */
} hx_notify_t;
#define HX_NOTIFY_ALL 7u

bool hx_email_valid(const char *s);
/* "new,question,status" (any of them, comma or space separated), "all" or "none" into bits.
 * 0, or -1 for an unknown word. */
int hx_notify_parse(const char *s, unsigned *bits);
/* The bits as hx_notify_parse reads them ("new,status", "none"). */
void hx_notify_text(unsigned bits, char *out, size_t cap);

/* Sets a user's address (NULL: kept; "": none) and notices (< 0: kept). 0, or -1 with why
 * ("email: ...", "name: no such user"). */
int hx_user_set_notify(hx_accounts_t *a, const char *name, const char *email, int notify, char *why, size_t cap);
/* A user's address ("" for none) and notices. 0, or -1 (no such user, or the store failed). */
int hx_user_notify(hx_accounts_t *a, const char *name, char email[HX_EMAIL_MAX + 1], unsigned *notify);
/* Each enabled user of clinic with an address who wants notices of kind (one HX_NOTIFY_*), by
 * name. 0, or -1. */
int hx_notice_recipients(hx_accounts_t *a, const char *clinic, unsigned kind,
                         void (*fn)(void *ud, const char *name, const char *email), void *ud);

/* The mail outbox: notices wait here (written when their message is stored, so a restart
 * loses none) until they are sent, or given up on. */
#define HX_MAIL_SUBJECT_MAX 200
#define HX_MAIL_BODY_MAX 4000
typedef struct {
    int64_t id;
    char user[HX_USER_MAX + 1];
    char to[HX_EMAIL_MAX + 1];
    char subject[HX_MAIL_SUBJECT_MAX + 1];      /* one line, no control characters */
    char body[HX_MAIL_BODY_MAX + 1];            /* lines ending in CRLF */
    uint32_t attempts;                          /* failed so far */
    uint64_t created_ms, next_at_ms;
} hx_mail_t;

/* When a failed notice is tried again: after first_ms, doubling with each failure up to
 * max_ms; given up once give_up_ms have passed since it was queued (0s: 30 s, 1 h, 24 h). */
typedef struct {
    uint64_t first_ms, max_ms, give_up_ms;
} hx_mail_retry_t;

/* Queues one notice to each recipient of clinic for kind (hx_notice_recipients), in one
 * statement. key names the event (a second queueing of one key for one user is a no-op).
 * The number queued, or -1 (the store failed, or subject/body too long or not one line). */
int hx_mail_queue(hx_accounts_t *a, const char *clinic, unsigned kind, const char *key, const char *subject,
                  const char *body);
/* The oldest notice due now: 1 with *m, 0 when none is due (*next_ms: when the next one is,
 * 0 for none waiting), -1 when the store failed. What waits for a user since disabled or left
 * without an address is given up first. */
int hx_mail_due(hx_accounts_t *a, hx_mail_t *m, uint64_t *next_ms);
/* A notice went out. 0, or -1. */
int hx_mail_sent(hx_accounts_t *a, int64_t id);
/* A notice's attempt failed (error: why, kept for the operator): 0 when it is tried again
 * later (r, NULL: the defaults), 1 when it is given up, -1 when the store failed. */
int hx_mail_failed(hx_accounts_t *a, int64_t id, const hx_mail_retry_t *r, const char *error);
/* How many notices are waiting, were sent, were given up (kept for 7 days after). 0, or -1. */
int hx_mail_counts(hx_accounts_t *a, uint64_t *waiting, uint64_t *sent, uint64_t *given_up);

#endif
