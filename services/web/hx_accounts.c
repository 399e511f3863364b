/* hx_accounts — users, sessions, throttling and CSRF for the portal (see hx_accounts.h). */
#include "hx_accounts.h"
#include "hx_accounts_internal.h"
#include "hx_accounts_store.h"
#include "hx_totp.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hx_accounts {
    hx_db_t *db;
    hx_accounts_config_t cfg;
    char err[800];                  /* the store's last failure, for messages */
    uint8_t csrf_key[crypto_auth_KEYBYTES];
    uint8_t seal_key[crypto_secretbox_KEYBYTES];    /* seals the TOTP secrets */
    uint8_t api_key[crypto_generichash_KEYBYTES];   /* the API's secret and token hashes (hx_api.c) */
};

static const char *const roles[] = {"", "clinician", "front-desk", "clinic-admin", "reviewer", "network-admin"};

const char *hx_user_role_text(hx_user_role_t r)
{
    return r >= HX_USER_CLINICIAN && r <= HX_USER_NETWORK_ADMIN ? roles[r] : "";
}

hx_user_role_t hx_user_role_from_text(const char *s)
{
    for (int r = HX_USER_CLINICIAN; s && r <= HX_USER_NETWORK_ADMIN; r++)
        if (!strcmp(s, roles[r]))
            return (hx_user_role_t)r;
    return 0;
}

static uint64_t now_ms(const hx_accounts_t *a)
{
    if (a->cfg.clock_ms)
        return a->cfg.clock_ms(a->cfg.clock_arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int bind(hx_db_stmt_t *st, int idx, const hx_db_val_t *v)
{
    switch (v->type) {
    case HX_DB_TEXT: return hx_db_bind_text(st, idx, v->text);
    case HX_DB_INT: return hx_db_bind_int(st, idx, v->i);
    case HX_DB_BLOB: return hx_db_bind_blob(st, idx, v->blob, v->len);
    default: return hx_db_bind_null(st, idx);
    }
}

/* Keeps the store's last failure for hx_accounts_error. */
static void failed(hx_accounts_t *a)
{
    snprintf(a->err, sizeof a->err, "%s", hx_db_errmsg(a->db));
}

hx_db_stmt_t *hx_accounts_prep(hx_accounts_t *a, const char *sql, const hx_db_val_t *v, size_t n)
{
    hx_db_stmt_t *st = hx_db_prep(a->db, sql);
    for (size_t i = 0; st && i < n; i++)
        if (bind(st, (int)i + 1, &v[i]) != 0) {
            hx_db_done(st);
            st = NULL;
        }
    if (!st)
        failed(a);
    return st;
}

int hx_accounts_step(hx_accounts_t *a, hx_db_stmt_t *st)
{
    int rc = hx_db_step(st);
    if (rc < 0)
        failed(a);
    return rc;
}

int hx_accounts_exec(hx_accounts_t *a, const char *sql, const hx_db_val_t *v, size_t n, int64_t *changes)
{
    hx_db_stmt_t *st = hx_accounts_prep(a, sql, v, n);
    int step = st ? hx_accounts_step(a, st) : -1;
    if (changes)
        *changes = step == HX_DB_DONE ? hx_db_changes(a->db) : 0;
    hx_db_done(st);
    return step < 0 ? -1 : 0;
}

int hx_accounts_begin(hx_accounts_t *a)
{
    return hx_db_begin(a->db, a->err, sizeof a->err) == 0 ? 0 : -1;
}

int hx_accounts_commit(hx_accounts_t *a)
{
    return hx_db_commit(a->db, a->err, sizeof a->err);
}

void hx_accounts_rollback(hx_accounts_t *a)
{
    hx_db_rollback(a->db);
}

const char *hx_accounts_error(const hx_accounts_t *a)
{
    return a->err[0] ? a->err : "no error";
}

/* A key of the store's own (name: "csrf", "totp", "api"), made once of random bytes and kept
 * (the first program to open a new store makes it; a second one at the same moment finds it). */
static int key_load(hx_accounts_t *a, const char *name, uint8_t *key, size_t len)
{
    uint8_t fresh[32];
    if (len > sizeof fresh)
        return -1;
    randombytes_buf(fresh, len);
    int rc = EXEC(a, "INSERT INTO secrets(name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", NULL,
                  HX_DB_T(name), HX_DB_B(fresh, len));
    sodium_memzero(fresh, sizeof fresh);
    hx_db_stmt_t *st = rc == 0 ? PREP(a, "SELECT value FROM secrets WHERE name = ?", HX_DB_T(name)) : NULL;
    rc = st && hx_accounts_step(a, st) == HX_DB_ROW && hx_db_col_bytes(st, 0) == len ? 0 : -1;
    if (rc == 0)
        memcpy(key, hx_db_col_blob(st, 0), len);
    else if (st)
        snprintf(a->err, sizeof a->err, "%s: the %s key is missing or not %zu bytes", hx_db_where(a->db), name, len);
    hx_db_done(st);
    return rc;
}

/* A SQLite file of the versions before its schema was counted (no "accounts" row in
 * handoff_schema) whose users table lacks the columns the notices added: they are added
 * (ALTER TABLE, as those versions did when they opened it), so the first step's CREATE TABLE
 * IF NOT EXISTS finds the file as a new one would be. In a write transaction: two programs
 * opening one older file at once cannot both add a column. */
static int legacy_users(hx_accounts_t *a)
{
    if (hx_accounts_begin(a) != 0)
        return -1;
    bool users = false, email = false, notify = false;
    hx_db_stmt_t *st = hx_db_prep_text(a->db, "PRAGMA table_info(users)");
    int step = st ? HX_DB_ROW : -1;
    while (st && (step = hx_db_step(st)) == HX_DB_ROW) {
        const char *col = hx_db_col_text(st, 1);
        users = true;
        email = email || !strcmp(col, "email");
        notify = notify || !strcmp(col, "notify");
    }
    hx_db_done(st);
    int rc = step == HX_DB_DONE ? 0 : -1;
    if (rc == 0 && users && !email)
        rc = EXEC0(a, "ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT ''", NULL);
    if (rc == 0 && users && !notify)
        rc = EXEC0(a, "ALTER TABLE users ADD COLUMN notify INTEGER NOT NULL DEFAULT 0", NULL);
    if (rc != 0) {
        if (step != HX_DB_DONE)
            failed(a);
        hx_accounts_rollback(a);
        return -1;
    }
    return hx_accounts_commit(a);
}

int hx_accounts_open(const char *where, const hx_accounts_config_t *cfg, hx_accounts_t **out, char *err, size_t cap)
{
    *out = NULL;
    if (sodium_init() < 0 || hx_totp_init() != 0) {
        snprintf(err, cap, "libsodium did not start");
        return -1;
    }
    hx_accounts_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    a->cfg = *cfg;
    a->cfg.idle_s = cfg->idle_s ? cfg->idle_s : 900;
    a->cfg.absolute_s = cfg->absolute_s ? cfg->absolute_s : 43200;
    a->cfg.max_failures = cfg->max_failures ? cfg->max_failures : 5;
    a->cfg.hold_s = cfg->hold_s ? cfg->hold_s : 300;
    a->db = hx_db_open(where, "accounts", NULL, 0, err, cap);
    if (!a->db) {
        hx_accounts_close(&a);
        return -1;
    }
    int rc = hx_db_kind(a->db) == HX_DB_SQLITE ? legacy_users(a) : 0;
    if (rc != 0)
        snprintf(err, cap, "%s (adding the e-mail notices' columns to an older store)", a->err);
    if (rc == 0 && hx_db_migrate(a->db, "accounts", hx_accounts_steps, hx_accounts_n_steps, err, cap) != 0)
        rc = -1;
    if (rc == 0 && (key_load(a, "csrf", a->csrf_key, sizeof a->csrf_key) != 0 ||
                    key_load(a, "totp", a->seal_key, sizeof a->seal_key) != 0 ||
                    key_load(a, "api", a->api_key, sizeof a->api_key) != 0)) {
        snprintf(err, cap, "%s", a->err);
        rc = -1;
    }
    if (rc != 0) {
        hx_accounts_close(&a);
        return -1;
    }
    *out = a;
    return 0;
}

void hx_accounts_close(hx_accounts_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_db_close(&(*self_p)->db);
    sodium_memzero((*self_p)->csrf_key, sizeof (*self_p)->csrf_key);
    sodium_memzero((*self_p)->seal_key, sizeof (*self_p)->seal_key);
    sodium_memzero((*self_p)->api_key, sizeof (*self_p)->api_key);
    free(*self_p);
    *self_p = NULL;
}

hx_db_t *hx_accounts_db(hx_accounts_t *a)
{
    return a->db;
}

int hx_accounts_ready(hx_accounts_t *a, char *err, size_t cap)
{
    return hx_db_ping(a->db, err, cap);
}

int hx_accounts_metrics(hx_accounts_t *a, hx_metrics_t *m)
{
    return hx_db_metrics(a->db, m);
}

uint64_t hx_accounts_now_ms(const hx_accounts_t *a)
{
    return now_ms(a);
}

const uint8_t *hx_accounts_api_key(const hx_accounts_t *a)
{
    return a->api_key;
}

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > HX_USER_MAX)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._@-") == n;
}

static int password_check(const char *pw, char *why, size_t cap)
{
    size_t n = pw ? strlen(pw) : 0;
    if (n < HX_PASSWORD_MIN || n > HX_PASSWORD_MAX) {
        snprintf(why, cap, "password: %zu bytes, must be %d to %d", n, HX_PASSWORD_MIN, HX_PASSWORD_MAX);
        return -1;
    }
    return 0;
}

static int hash_password(const char *pw, char out[crypto_pwhash_STRBYTES])
{
    return crypto_pwhash_str_alg(out, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                 crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13);
}

int hx_user_add(hx_accounts_t *a, const char *name, const char *clinic, hx_user_role_t role, const char *password,
                char *why, size_t cap)
{
    bool network = role == HX_USER_REVIEWER || role == HX_USER_NETWORK_ADMIN;
    char hash[crypto_pwhash_STRBYTES];
    if (!name_ok(name)) {
        snprintf(why, cap, "name: 1 to %d of a-z, 0-9, '.', '_', '@', '-'", HX_USER_MAX);
        return -1;
    }
    if (!hx_user_role_text(role)[0]) {
        snprintf(why, cap, "role: clinician, front-desk, clinic-admin, reviewer or network-admin");
        return -1;
    }
    if (network ? clinic && clinic[0] : !clinic || !clinic[0] || strlen(clinic) > 31) {
        snprintf(why, cap, "clinic: %s", network ? "a network role belongs to no clinic" : "required for a clinic role");
        return -1;
    }
    if (password_check(password, why, cap) != 0)
        return -1;
    if (hash_password(password, hash) != 0) {
        snprintf(why, cap, "out of memory hashing the password");
        return -1;
    }
    hx_db_stmt_t *st = PREP(a, "INSERT INTO users(name, clinic, role, hash, created_ms) VALUES (?, ?, ?, ?, ?)",
                            HX_DB_T(name), HX_DB_T(network ? "" : clinic), HX_DB_I(role), HX_DB_T(hash),
                            HX_DB_I(now_ms(a)));
    int rc = st && hx_accounts_step(a, st) == HX_DB_DONE ? 0 : -1;
    if (rc != 0)
        snprintf(why, cap, "%s", hx_db_unique_violation(a->db) ? "name: taken" : hx_accounts_error(a));
    hx_db_done(st);
    sodium_memzero(hash, sizeof hash);
    return rc;
}

/* 1 when the user exists, 0 not, -1 error. */
static int user_load(hx_accounts_t *a, const char *name, hx_user_t *u, char hash[crypto_pwhash_STRBYTES])
{
    hx_db_stmt_t *st = PREP(a, "SELECT clinic, role, hash, disabled FROM users WHERE name = ?", HX_DB_T(name));
    int step = st ? hx_accounts_step(a, st) : -1, found = step == HX_DB_ROW ? 1 : step == HX_DB_DONE ? 0 : -1;
    if (found == 1) {
        memset(u, 0, sizeof *u);
        snprintf(u->name, sizeof u->name, "%s", name);
        snprintf(u->clinic, sizeof u->clinic, "%s", hx_db_col_text(st, 0));
        u->role = (hx_user_role_t)hx_db_col_int(st, 1);
        if (hash)
            snprintf(hash, crypto_pwhash_STRBYTES, "%s", hx_db_col_text(st, 2));
        u->disabled = hx_db_col_int(st, 3) != 0;
    }
    hx_db_done(st);
    return found;
}

/* Changes user name with sql (?1 the name, ?2 arg when not NULL); its sessions and pending sign-ins end and
 * its failures are forgotten with the change (forget_totp: its second factor too), all or
 * nothing. */
static int user_change(hx_accounts_t *a, const char *name, const char *sql, const char *arg, bool forget_totp,
                       char *why, size_t cap)
{
    hx_user_t u;
    int found = name_ok(name) ? user_load(a, name, &u, NULL) : 0;
    if (found != 1) {
        snprintf(why, cap, found < 0 ? "the accounts store failed" : "name: no such user");
        return -1;
    }
    if (hx_accounts_begin(a) ||
        (arg ? EXEC(a, sql, NULL, HX_DB_T(name), HX_DB_T(arg)) : EXEC(a, sql, NULL, HX_DB_T(name))) ||
        EXEC(a, "DELETE FROM sessions WHERE name = ?", NULL, HX_DB_T(name)) ||
        EXEC(a, "DELETE FROM pending WHERE name = ?", NULL, HX_DB_T(name)) ||
        (forget_totp && EXEC(a, "DELETE FROM totp WHERE name = ?", NULL, HX_DB_T(name))) ||
        EXEC(a, "DELETE FROM failures WHERE name = ?", NULL, HX_DB_T(name)) || hx_accounts_commit(a)) {
        hx_accounts_rollback(a);
        snprintf(why, cap, "the accounts store failed: %s", hx_accounts_error(a));
        return -1;
    }
    return 0;
}

int hx_user_disable(hx_accounts_t *a, const char *name, char *why, size_t cap)
{
    return user_change(a, name, "UPDATE users SET disabled = 1 WHERE name = ?1", NULL, false, why, cap);
}

int hx_user_reset(hx_accounts_t *a, const char *name, const char *password, char *why, size_t cap)
{
    char hash[crypto_pwhash_STRBYTES];
    if (password_check(password, why, cap) != 0)
        return -1;
    if (hash_password(password, hash) != 0) {
        snprintf(why, cap, "out of memory hashing the password");
        return -1;
    }
    int rc = user_change(a, name, "UPDATE users SET hash = ?2, disabled = 0 WHERE name = ?1", hash, true, why, cap);
    sodium_memzero(hash, sizeof hash);
    return rc;
}

static void token_hash(const char *token, uint8_t out[32])
{
    crypto_generichash(out, 32, (const uint8_t *)token, strlen(token), NULL, 0);
}

static void token_new(char out[HX_TOKEN_LEN + 1])
{
    uint8_t raw[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, HX_TOKEN_LEN + 1, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* A failed login of name: counted, and held back once max_failures are reached. */
static void failure(hx_accounts_t *a, const char *name, uint64_t t)
{
    EXEC(a, "INSERT INTO failures(name, count) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET count = failures.count + 1", NULL, HX_DB_T(name));
    EXEC(a, "UPDATE failures SET held_until_ms = ?, count = 0 WHERE name = ? AND count >= ?", NULL,
         HX_DB_I(t + (uint64_t)a->cfg.hold_s * 1000), HX_DB_T(name), HX_DB_I(a->cfg.max_failures));
}

/* 1 when name is held back at t, 0 when not, -1 when the store cannot say. */
static int held(hx_accounts_t *a, const char *name, uint64_t t)
{
    hx_db_stmt_t *st = PREP(a, "SELECT held_until_ms FROM failures WHERE name = ?", HX_DB_T(name));
    int step = st ? hx_accounts_step(a, st) : -1;
    int h = step < 0 ? -1 : step == HX_DB_ROW && (uint64_t)hx_db_col_int(st, 0) > t;
    hx_db_done(st);
    return h;
}

/* A new session of name: its token in token. 0, or -1 (token ""). */
static int session_open(hx_accounts_t *a, const char *name, uint64_t t, char token[HX_TOKEN_LEN + 1])
{
    uint8_t h[32];
    token_new(token);
    token_hash(token, h);
    int rc = EXEC(a, "INSERT INTO sessions(token_hash, name, created_ms, seen_ms) VALUES (?, ?, ?, ?)", NULL,
                  HX_DB_B(h, sizeof h), HX_DB_T(name), HX_DB_I(t), HX_DB_I(t));
    if (rc != 0)
        token[0] = '\0';
    return rc;
}

static int pending_open(hx_accounts_t *a, const char *name, uint64_t t, char token[HX_TOKEN_LEN + 1]);

hx_login_t hx_login(hx_accounts_t *a, const char *name, const char *password, char token[HX_TOKEN_LEN + 1],
                    hx_user_t *user)
{
    token[0] = '\0';
    uint64_t t = now_ms(a);
    if (!name_ok(name) || !password || strlen(password) > HX_PASSWORD_MAX)
        return HX_LOGIN_REFUSED;
    int h = held(a, name, t);
    if (h != 0)
        return h > 0 ? HX_LOGIN_HELD : HX_LOGIN_ERROR;
    char hash[crypto_pwhash_STRBYTES] = "";
    int found = user_load(a, name, user, hash);
    if (found < 0)
        return HX_LOGIN_ERROR;
    bool ok = found == 1 && !user->disabled && crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
    sodium_memzero(hash, sizeof hash);
    if (!ok) {
        failure(a, name, t);
        return HX_LOGIN_REFUSED;
    }
    int second = hx_totp_policy(a, user->clinic);
    if (second != 0)                /* the failures stay counted until the code is right too */
        return second > 0 && pending_open(a, name, t, token) == 0 ? HX_LOGIN_TOTP : HX_LOGIN_ERROR;
    if (session_open(a, name, t, token) != 0)
        return HX_LOGIN_ERROR;
    EXEC(a, "DELETE FROM failures WHERE name = ?", NULL, HX_DB_T(name));
    return HX_LOGIN_OK;
}

/* The user of a live session; touch: it is used now (its idle timer starts again). */
static int session_user(hx_accounts_t *a, const char *token, hx_user_t *user, bool touch)
{
    if (!token || strlen(token) != HX_TOKEN_LEN)
        return -1;
    uint8_t h[32];
    token_hash(token, h);
    uint64_t t = now_ms(a);
    hx_db_stmt_t *st = PREP(a, "SELECT name, created_ms, seen_ms FROM sessions WHERE token_hash = ?",
                            HX_DB_B(h, sizeof h));
    if (!st)
        return -1;
    char name[HX_USER_MAX + 1] = "";
    bool live = false;
    int step = hx_accounts_step(a, st);
    if (step == HX_DB_ROW) {
        snprintf(name, sizeof name, "%s", hx_db_col_text(st, 0));
        uint64_t created = (uint64_t)hx_db_col_int(st, 1), seen = (uint64_t)hx_db_col_int(st, 2);
        live = t < created + (uint64_t)a->cfg.absolute_s * 1000 && t < seen + (uint64_t)a->cfg.idle_s * 1000;
    }
    hx_db_done(st);
    if (step < 0)
        return -1;                  /* the store failed: the session is not ended for that */
    if (live && user_load(a, name, user, NULL) == 1 && !user->disabled) {
        if (touch)
            EXEC(a, "UPDATE sessions SET seen_ms = ? WHERE token_hash = ?", NULL, HX_DB_I(t), HX_DB_B(h, sizeof h));
        return 0;
    }
    hx_logout(a, token);            /* an ended session is gone for good */
    return -1;
}

int hx_session_user(hx_accounts_t *a, const char *token, hx_user_t *user)
{
    return session_user(a, token, user, true);
}

int hx_session_peek(hx_accounts_t *a, const char *token, hx_user_t *user)
{
    return session_user(a, token, user, false);
}

void hx_logout(hx_accounts_t *a, const char *token)
{
    if (!token)
        return;
    uint8_t h[32];
    token_hash(token, h);
    EXEC(a, "DELETE FROM sessions WHERE token_hash = ?", NULL, HX_DB_B(h, sizeof h));
}

void hx_csrf_token(const hx_accounts_t *a, const char *session, char out[HX_TOKEN_LEN + 1])
{
    uint8_t mac[crypto_auth_BYTES];
    crypto_auth(mac, (const uint8_t *)session, session ? strlen(session) : 0, a->csrf_key);
    sodium_bin2base64(out, HX_TOKEN_LEN + 1, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

bool hx_csrf_ok(const hx_accounts_t *a, const char *session, const char *csrf)
{
    char want[HX_TOKEN_LEN + 1];
    if (!session || !csrf || strlen(csrf) != HX_TOKEN_LEN)
        return false;
    hx_csrf_token(a, session, want);
    return sodium_memcmp(want, csrf, HX_TOKEN_LEN) == 0;
}

int hx_user_each(hx_accounts_t *a, const char *clinic, void (*fn)(void *ud, const hx_user_t *u), void *ud)
{
    hx_db_stmt_t *st = PREP(a, "SELECT name, clinic, role, disabled FROM users "
                               "WHERE CAST(?1 AS TEXT) IS NULL OR clinic = ?1 ORDER BY clinic, name", HX_DB_T(clinic));
    int step = st ? HX_DB_ROW : -1;
    while (st && (step = hx_accounts_step(a, st)) == HX_DB_ROW) {
        hx_user_t u = {0};
        snprintf(u.name, sizeof u.name, "%s", hx_db_col_text(st, 0));
        snprintf(u.clinic, sizeof u.clinic, "%s", hx_db_col_text(st, 1));
        u.role = (hx_user_role_t)hx_db_col_int(st, 2);
        u.disabled = hx_db_col_int(st, 3) != 0;
        fn(ud, &u);
    }
    hx_db_done(st);
    return step == HX_DB_DONE ? 0 : -1;
}

int hx_audit(hx_accounts_t *a, const hx_audit_t *e)
{
    const char *t[] = {e->user, e->clinic, e->action, e->referral_id, e->detail, e->address};
    for (int i = 0; i < 6; i++)
        t[i] = t[i] ? t[i] : "";
    return EXEC(a, "INSERT INTO audit(at_ms, \"user\", clinic, action, referral_id, detail, address) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", NULL, HX_DB_I(e->at_ms ? e->at_ms : now_ms(a)), HX_DB_T(t[0]),
                HX_DB_T(t[1]), HX_DB_T(t[2]), HX_DB_T(t[3]), HX_DB_T(t[4]), HX_DB_T(t[5]));
}

int hx_audit_each(hx_accounts_t *a, const char *clinic, const char *referral_id, size_t limit,
                  void (*fn)(void *ud, const hx_audit_t *e), void *ud)
{
    hx_db_stmt_t *st = PREP(a, "SELECT at_ms, \"user\", clinic, action, referral_id, detail, address FROM audit "
                               "WHERE (CAST(?1 AS TEXT) IS NULL OR clinic = ?1) "
                               "AND (CAST(?2 AS TEXT) IS NULL OR referral_id = ?2) "
                               "ORDER BY seq DESC LIMIT ?3",
                            HX_DB_T(clinic), HX_DB_T(referral_id), HX_DB_I(limit ? limit : 100));
    int step = st ? HX_DB_ROW : -1;
    while (st && (step = hx_accounts_step(a, st)) == HX_DB_ROW) {
        hx_audit_t e = {.at_ms = (uint64_t)hx_db_col_int(st, 0)};
        const char **f[] = {&e.user, &e.clinic, &e.action, &e.referral_id, &e.detail, &e.address};
        for (int i = 0; i < 6; i++)
            *f[i] = hx_db_col_text(st, i + 1);
        fn(ud, &e);
    }
    hx_db_done(st);
    return step == HX_DB_DONE ? 0 : -1;
}

/* ---- the second factor (TOTP) ------------------------------------------------------------- */

#define SEALED_LEN (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + HX_TOTP_SECRET_BYTES)

/* A TOTP secret sealed with the store's key: a random nonce, then the box. */
static void seal(const hx_accounts_t *a, const uint8_t secret[HX_TOTP_SECRET_BYTES], uint8_t out[SEALED_LEN])
{
    randombytes_buf(out, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, secret, HX_TOTP_SECRET_BYTES, out, a->seal_key);
}

/* 0 with the secret of a sealed blob, or -1 when it is not one this store sealed. */
static int unseal(const hx_accounts_t *a, const void *blob, size_t n, uint8_t secret[HX_TOTP_SECRET_BYTES])
{
    const uint8_t *b = blob;
    if (!b || n != SEALED_LEN)
        return -1;
    return crypto_secretbox_open_easy(secret, b + crypto_secretbox_NONCEBYTES, SEALED_LEN - crypto_secretbox_NONCEBYTES,
                                      b, a->seal_key);
}

static bool clinic_ok(const char *clinic)
{
    size_t n = clinic ? strlen(clinic) : 0;
    return clinic && n < sizeof ((hx_user_t *)0)->clinic && (n == 0 || name_ok(clinic));
}

int hx_totp_policy_set(hx_accounts_t *a, const char *clinic, bool on, char *why, size_t cap)
{
    if (!clinic_ok(clinic)) {
        snprintf(why, cap, "clinic: 1 to 31 of a-z, 0-9, '.', '_', '@', '-'");
        return -1;
    }
    int rc = hx_accounts_begin(a);
    if (rc == 0 && on) {
        rc = EXEC(a, "INSERT INTO totp_policy(clinic, changed_ms) VALUES (?1, ?2) "
                     "ON CONFLICT (clinic) DO UPDATE SET changed_ms = excluded.changed_ms", NULL,
                  HX_DB_T(clinic), HX_DB_I(now_ms(a)));
        /* sessions opened with a password alone end: everyone signs in again with a code */
        if (rc == 0)
            rc = EXEC(a, "DELETE FROM sessions WHERE name IN (SELECT name FROM users WHERE clinic = ?)", NULL,
                      HX_DB_T(clinic));
    } else if (rc == 0) {
        rc = EXEC(a, "DELETE FROM totp_policy WHERE clinic = ?", NULL, HX_DB_T(clinic));
    }
    if (rc != 0 || hx_accounts_commit(a) != 0) {
        snprintf(why, cap, "the accounts store failed: %s", hx_accounts_error(a));
        hx_accounts_rollback(a);
        return -1;
    }
    return 0;
}

/* 1 when sql (one text bind) finds a row, 0 when not, -1 on error. */
static int exists(hx_accounts_t *a, const char *sql, const char *arg)
{
    hx_db_stmt_t *st = PREP(a, sql, HX_DB_T(arg));
    int step = st ? hx_accounts_step(a, st) : -1;
    hx_db_done(st);
    return step == HX_DB_ROW ? 1 : step == HX_DB_DONE ? 0 : -1;
}

int hx_totp_policy(hx_accounts_t *a, const char *clinic)
{
    return exists(a, "SELECT 1 FROM totp_policy WHERE clinic = ?", clinic ? clinic : "");
}

int hx_totp_enrolled(hx_accounts_t *a, const char *name)
{
    return exists(a, "SELECT 1 FROM totp WHERE name = ?", name ? name : "");
}

/* A pending sign-in of name (the only one it has: an earlier one ends), with a new sealed
 * secret when the user has none yet. */
static int pending_open(hx_accounts_t *a, const char *name, uint64_t t, char token[HX_TOKEN_LEN + 1])
{
    int enrolled = hx_totp_enrolled(a, name);
    uint8_t h[32], secret[HX_TOTP_SECRET_BYTES], sealed[SEALED_LEN];
    if (enrolled < 0)
        return -1;
    if (!enrolled) {
        randombytes_buf(secret, sizeof secret);
        seal(a, secret, sealed);
        sodium_memzero(secret, sizeof secret);
    }
    token_new(token);
    token_hash(token, h);
    int rc = EXEC(a, "DELETE FROM pending WHERE name = ? OR created_ms <= ?", NULL, HX_DB_T(name),
                  HX_DB_I(t > HX_PENDING_S * 1000ull ? t - HX_PENDING_S * 1000ull : 0));
    if (rc == 0)
        rc = EXEC(a, "INSERT INTO pending(token_hash, name, created_ms, enrol) VALUES (?, ?, ?, ?)", NULL,
                  HX_DB_B(h, sizeof h), HX_DB_T(name), HX_DB_I(t),
                  enrolled ? HX_DB_NONE : HX_DB_B(sealed, sizeof sealed));
    if (rc != 0)
        token[0] = '\0';
    return rc;
}

/* A live pending sign-in by token: 1 with its user's name, created time and new secret (when
 * enrolling: *has_enrol), 0 when there is none (an expired one is removed), -1 on error. */
static int pending_load(hx_accounts_t *a, const char *token, uint64_t t, char name[HX_USER_MAX + 1],
                        uint64_t *created, uint8_t enrol[HX_TOTP_SECRET_BYTES], bool *has_enrol)
{
    *has_enrol = false;
    if (!token || strlen(token) != HX_TOKEN_LEN)
        return 0;
    uint8_t h[32];
    token_hash(token, h);
    hx_db_stmt_t *st = PREP(a, "SELECT name, created_ms, enrol FROM pending WHERE token_hash = ?",
                            HX_DB_B(h, sizeof h));
    int step = st ? hx_accounts_step(a, st) : -1, found = step == HX_DB_ROW ? 1 : step == HX_DB_DONE ? 0 : -1;
    if (found == 1) {
        snprintf(name, HX_USER_MAX + 1, "%s", hx_db_col_text(st, 0));
        *created = (uint64_t)hx_db_col_int(st, 1);
        if (t >= *created + HX_PENDING_S * 1000ull)
            found = 0;
        else if (!hx_db_col_null(st, 2)) {
            *has_enrol = true;
            if (unseal(a, hx_db_col_blob(st, 2), hx_db_col_bytes(st, 2), enrol) != 0)
                found = -1;
        }
    }
    hx_db_done(st);
    if (found == 0)
        hx_pending_end(a, token);
    return found;
}

int hx_pending(hx_accounts_t *a, const char *token, hx_pending_t *p)
{
    memset(p, 0, sizeof *p);
    char name[HX_USER_MAX + 1];
    uint64_t created = 0;
    uint8_t secret[HX_TOTP_SECRET_BYTES];
    bool enrolling = false;
    int rc = -1;
    if (pending_load(a, token, now_ms(a), name, &created, secret, &enrolling) == 1 &&
        user_load(a, name, &p->user, NULL) == 1 && !p->user.disabled) {
        p->expires_ms = created + HX_PENDING_S * 1000ull;
        p->enrolling = enrolling;
        rc = !enrolling || (hx_totp_base32(secret, sizeof secret, p->secret_base32) == 0 &&
                            hx_totp_uri(name, p->secret_base32, p->uri, sizeof p->uri) == 0) ? 0 : -1;
    }
    sodium_memzero(secret, sizeof secret);
    if (rc != 0)
        sodium_memzero(p, sizeof *p);
    return rc;
}

void hx_pending_end(hx_accounts_t *a, const char *token)
{
    if (!token)
        return;
    uint8_t h[32];
    token_hash(token, h);
    EXEC(a, "DELETE FROM pending WHERE token_hash = ?", NULL, HX_DB_B(h, sizeof h));
}

/* The user's confirmed secret and the last step accepted: 1, 0 when none, -1 on error. */
static int totp_load(hx_accounts_t *a, const char *name, uint8_t secret[HX_TOTP_SECRET_BYTES], int64_t *last_step)
{
    hx_db_stmt_t *st = PREP(a, "SELECT sealed, last_step FROM totp WHERE name = ?", HX_DB_T(name));
    int step = st ? hx_accounts_step(a, st) : -1, found = step == HX_DB_ROW ? 1 : step == HX_DB_DONE ? 0 : -1;
    if (found == 1) {
        *last_step = hx_db_col_int(st, 1);
        if (unseal(a, hx_db_col_blob(st, 0), hx_db_col_bytes(st, 0), secret) != 0)
            found = -1;
    }
    hx_db_done(st);
    return found;
}

/* The code was right: the secret kept (enrolling) or its step recorded, the pending sign-in
 * ended, a session opened and the failures forgotten, all or nothing. The step must be later
 * than the one recorded, also against another program sharing the store (the UPDATE's
 * condition is checked on the row as it is when the row is written), and the pending sign-in
 * is used once (its DELETE must find it). */
static int totp_accept(hx_accounts_t *a, const char *pending, const char *name, const uint8_t *enrol, int64_t step,
                       uint64_t t, char token[HX_TOKEN_LEN + 1])
{
    uint8_t h[32], sealed[SEALED_LEN];
    token_hash(pending, h);
    int64_t n = 0;
    int rc = hx_accounts_begin(a);
    if (rc == 0 && enrol) {
        seal(a, enrol, sealed);
        rc = EXEC(a, "INSERT INTO totp(name, last_step, enrolled_ms, sealed) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT (name) DO UPDATE SET last_step = excluded.last_step, "
                     "enrolled_ms = excluded.enrolled_ms, sealed = excluded.sealed", &n,
                  HX_DB_T(name), HX_DB_I(step), HX_DB_I(t), HX_DB_B(sealed, sizeof sealed));
    } else if (rc == 0) {
        rc = EXEC(a, "UPDATE totp SET last_step = ?2 WHERE name = ?1 AND last_step < ?2", &n, HX_DB_T(name),
                  HX_DB_I(step));
    }
    if (rc == 0 && n != 1)
        rc = -1;
    if (rc == 0 && (rc = EXEC(a, "DELETE FROM pending WHERE token_hash = ?", &n, HX_DB_B(h, sizeof h))) == 0 && n != 1)
        rc = -1;
    if (rc == 0)
        rc = session_open(a, name, t, token);
    if (rc == 0)
        rc = EXEC(a, "DELETE FROM failures WHERE name = ?", NULL, HX_DB_T(name));
    if (rc == 0)
        rc = hx_accounts_commit(a);
    if (rc != 0) {
        hx_accounts_rollback(a);
        token[0] = '\0';
    }
    return rc;
}

hx_login_t hx_login_totp(hx_accounts_t *a, const char *pending, const char *code, char token[HX_TOKEN_LEN + 1],
                         hx_user_t *user)
{
    token[0] = '\0';
    uint64_t t = now_ms(a), created = 0;
    char name[HX_USER_MAX + 1];
    uint8_t secret[HX_TOTP_SECRET_BYTES], enrol[HX_TOTP_SECRET_BYTES];
    bool enrolling = false;
    int found = pending_load(a, pending, t, name, &created, enrol, &enrolling);
    if (found <= 0)
        return found < 0 ? HX_LOGIN_ERROR : HX_LOGIN_EXPIRED;
    hx_login_t out = HX_LOGIN_ERROR;
    int64_t last_step = -1;
    int u = user_load(a, name, user, NULL);
    if (u <= 0 || user->disabled) {
        hx_pending_end(a, pending);
        out = u < 0 ? HX_LOGIN_ERROR : HX_LOGIN_EXPIRED;
    } else if ((u = held(a, name, t)) != 0) {
        if (u > 0)
            hx_pending_end(a, pending);     /* after the hold: the password first again */
        out = u > 0 ? HX_LOGIN_HELD : HX_LOGIN_ERROR;
    } else if (enrolling || (found = totp_load(a, name, secret, &last_step)) == 1) {
        int64_t step = hx_totp_match(enrolling ? enrol : secret, HX_TOTP_SECRET_BYTES, t / 1000,
                                     code ? code : "", last_step);
        if (step < 0) {
            failure(a, name, t);
            out = HX_LOGIN_REFUSED;
        } else {
            out = totp_accept(a, pending, name, enrolling ? enrol : NULL, step, t, token) == 0 ? HX_LOGIN_OK
                                                                                              : HX_LOGIN_ERROR;
        }
    } else if (found == 0) {                /* reset since the password: enrol from the start */
        hx_pending_end(a, pending);
        out = HX_LOGIN_EXPIRED;
    }
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(enrol, sizeof enrol);
    return out;
}

/* ---- e-mail notices ---------------------------------------------------------------------- */

#define MAIL_KEEP_MS (7ull * 24 * 3600 * 1000)     /* sent and given-up notices kept this long */

static bool label_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool hx_email_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > HX_EMAIL_MAX)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || (size_t)(at - s) > 64 || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; p < (const unsigned char *)at; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("<>()[]\\,;:\"", *p))
            return false;
    /* the domain: labels of letters, digits and '-', none empty, none starting or ending in '-' */
    for (const char *label = at + 1; *label;) {
        size_t len = 0;
        while (label[len] && label[len] != '.') {
            if (!label_char((unsigned char)label[len]))
                return false;
            len++;
        }
        if (len == 0 || len > 63 || label[0] == '-' || label[len - 1] == '-')
            return false;
        label += len;
        if (*label == '.' && !*++label)
            return false;           /* a trailing dot */
    }
    return true;
}

static const struct {
    const char *word;
    unsigned bit;
} notify_words[] = {{"new", HX_NOTIFY_HANDOFF}, {"question", HX_NOTIFY_QUESTION}, {"status", HX_NOTIFY_STATUS}};

int hx_notify_parse(const char *s, unsigned *bits)
{
    *bits = 0;
    if (!s)
        return -1;
    bool none = false, some = false;
    while (*s) {
        size_t skip = strspn(s, ", "), len;
        s += skip;
        if (!(len = strcspn(s, ", ")))
            break;
        bool known = false;
        if (len == 4 && !strncmp(s, "none", 4))
            none = known = true;
        else if (len == 3 && !strncmp(s, "all", 3))
            *bits |= HX_NOTIFY_ALL, some = known = true;
        for (size_t i = 0; i < sizeof notify_words / sizeof *notify_words; i++)
            if (strlen(notify_words[i].word) == len && !strncmp(s, notify_words[i].word, len))
                *bits |= notify_words[i].bit, some = known = true;
        if (!known)
            return -1;
        s += len;
    }
    return none && some ? -1 : 0;   /* "none,new" says two things */
}

void hx_notify_text(unsigned bits, char *out, size_t cap)
{
    size_t n = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof notify_words / sizeof *notify_words; i++)
        if (bits & notify_words[i].bit) {
            int w = snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? "," : "", notify_words[i].word);
            n += w > 0 ? (size_t)w : 0;
        }
    if (!n)
        snprintf(out, cap, "none");
}

int hx_user_set_notify(hx_accounts_t *a, const char *name, const char *email, int notify, char *why, size_t cap)
{
    if (email && email[0] && !hx_email_valid(email)) {
        snprintf(why, cap, "email: not an address this portal sends to (one '@', a domain, ASCII, at most %d "
                           "bytes, no spaces)", HX_EMAIL_MAX);
        return -1;
    }
    if (notify > (int)HX_NOTIFY_ALL) {
        snprintf(why, cap, "notify: unknown notices");
        return -1;
    }
    if (!name_ok(name)) {
        snprintf(why, cap, "name: no such user");
        return -1;
    }
    int64_t n = 0;
    if (EXEC(a, "UPDATE users SET email = coalesce(?1, email),"
                " notify = CASE WHEN ?2 < 0 THEN notify ELSE ?2 END WHERE name = ?3", &n,
             HX_DB_T(email), HX_DB_I(notify), HX_DB_T(name)) != 0) {
        snprintf(why, cap, "the accounts store failed: %s", hx_accounts_error(a));
        return -1;
    }
    if (n == 0) {
        snprintf(why, cap, "name: no such user");
        return -1;
    }
    return 0;
}

int hx_user_notify(hx_accounts_t *a, const char *name, char email[HX_EMAIL_MAX + 1], unsigned *notify)
{
    email[0] = '\0';
    *notify = 0;
    hx_db_stmt_t *st = name_ok(name) ? PREP(a, "SELECT email, notify FROM users WHERE name = ?", HX_DB_T(name)) : NULL;
    int rc = -1;
    if (st && hx_accounts_step(a, st) == HX_DB_ROW) {
        snprintf(email, HX_EMAIL_MAX + 1, "%s", hx_db_col_text(st, 0));
        *notify = (unsigned)hx_db_col_int(st, 1) & HX_NOTIFY_ALL;
        rc = 0;
    }
    hx_db_done(st);
    return rc;
}

/* The recipients of clinic for kind: enabled clinic users with an address and that wish. */
#define RECIPIENTS                                                                                                \
    "FROM users WHERE clinic = ?1 AND clinic != '' AND disabled = 0 AND email != '' AND (notify & ?2) != 0"

int hx_notice_recipients(hx_accounts_t *a, const char *clinic, unsigned kind,
                         void (*fn)(void *ud, const char *name, const char *email), void *ud)
{
    hx_db_stmt_t *st = clinic ? PREP(a, "SELECT name, email " RECIPIENTS " ORDER BY name", HX_DB_T(clinic),
                                     HX_DB_I(kind)) : NULL;
    int step = st ? HX_DB_ROW : -1;
    while (st && (step = hx_accounts_step(a, st)) == HX_DB_ROW) {
        const char *email = hx_db_col_text(st, 1);
        if (hx_email_valid(email))      /* set through hx_user_set_notify; checked again all the same */
            fn(ud, hx_db_col_text(st, 0), email);
    }
    hx_db_done(st);
    return step == HX_DB_DONE ? 0 : -1;
}

/* One line of printable ASCII or UTF-8: no control character. */
static bool one_line(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < ' ' || *p == 0x7f)
            return false;
    return true;
}

int hx_mail_queue(hx_accounts_t *a, const char *clinic, unsigned kind, const char *key, const char *subject,
                  const char *body)
{
    if (!clinic || !key || !subject || !body || strlen(subject) > HX_MAIL_SUBJECT_MAX || !one_line(subject) ||
        strlen(body) > HX_MAIL_BODY_MAX)
        return -1;
    uint64_t t = now_ms(a);
    int64_t n = 0;
    if (EXEC(a, "INSERT INTO mail_outbox(dedup, \"user\", to_addr, subject, body, created_ms, next_at_ms)"
                " SELECT CAST(?3 AS TEXT) || ':' || name, name, email, ?4, ?5, ?6, ?6 " RECIPIENTS
                " ORDER BY name ON CONFLICT (dedup) DO NOTHING", &n,
             HX_DB_T(clinic), HX_DB_I(kind), HX_DB_T(key), HX_DB_T(subject), HX_DB_T(body), HX_DB_I(t)) != 0)
        return -1;
    return (int)n;
}

int hx_mail_due(hx_accounts_t *a, hx_mail_t *m, uint64_t *next_ms)
{
    *next_ms = 0;
    /* a user disabled, or without an address now, gets nothing more of what waits */
    if (EXEC(a, "UPDATE mail_outbox SET sent = 2, done_ms = ?, last_error = 'the user was disabled or has no address'"
                " WHERE sent = 0 AND \"user\" NOT IN (SELECT name FROM users WHERE disabled = 0 AND email != '')",
             NULL, HX_DB_I(now_ms(a))) != 0)
        return -1;
    hx_db_stmt_t *st = hx_db_prep(a->db, "SELECT id, \"user\", to_addr, subject, body, attempts, created_ms, "
                                         "next_at_ms FROM mail_outbox WHERE sent = 0 ORDER BY next_at_ms, id LIMIT 1");
    int step = st ? hx_accounts_step(a, st) : -1, rc = step == HX_DB_DONE ? 0 : step == HX_DB_ROW ? 1 : -1;
    if (rc == 1) {
        memset(m, 0, sizeof *m);
        m->id = hx_db_col_int(st, 0);
        snprintf(m->user, sizeof m->user, "%s", hx_db_col_text(st, 1));
        snprintf(m->to, sizeof m->to, "%s", hx_db_col_text(st, 2));
        snprintf(m->subject, sizeof m->subject, "%s", hx_db_col_text(st, 3));
        snprintf(m->body, sizeof m->body, "%s", hx_db_col_text(st, 4));
        m->attempts = (uint32_t)hx_db_col_int(st, 5);
        m->created_ms = (uint64_t)hx_db_col_int(st, 6);
        m->next_at_ms = (uint64_t)hx_db_col_int(st, 7);
        if (m->next_at_ms > now_ms(a)) {
            *next_ms = m->next_at_ms;
            rc = 0;
        }
    }
    if (!st)
        failed(a);
    hx_db_done(st);
    return rc;
}

/* Marks id done (sent 1 or 2) and forgets notices done more than MAIL_KEEP_MS ago. */
static int mail_done(hx_accounts_t *a, int64_t id, int sent, const char *error)
{
    uint64_t t = now_ms(a);
    if (EXEC(a, "UPDATE mail_outbox SET sent = ?1, done_ms = ?2, last_error = coalesce(?3, last_error),"
                " attempts = attempts + CASE WHEN ?1 = 2 THEN 1 ELSE 0 END WHERE id = ?4 AND sent = 0", NULL,
             HX_DB_I(sent), HX_DB_I(t), HX_DB_T(error), HX_DB_I(id)) != 0)
        return -1;
    if (t > MAIL_KEEP_MS)
        EXEC(a, "DELETE FROM mail_outbox WHERE sent != 0 AND done_ms < ?", NULL, HX_DB_I(t - MAIL_KEEP_MS));
    return 0;
}

int hx_mail_sent(hx_accounts_t *a, int64_t id)
{
    return mail_done(a, id, 1, NULL);
}

int hx_mail_failed(hx_accounts_t *a, int64_t id, const hx_mail_retry_t *r, const char *error)
{
    uint64_t first = r && r->first_ms ? r->first_ms : 30000, most = r && r->max_ms ? r->max_ms : 3600000,
             give_up = r && r->give_up_ms ? r->give_up_ms : 86400000;
    uint64_t t = now_ms(a);
    hx_db_stmt_t *st = PREP(a, "SELECT attempts, created_ms FROM mail_outbox WHERE id = ? AND sent = 0", HX_DB_I(id));
    int step = st ? hx_accounts_step(a, st) : -1;
    uint32_t attempts = step == HX_DB_ROW ? (uint32_t)hx_db_col_int(st, 0) + 1 : 0;
    uint64_t created = step == HX_DB_ROW ? (uint64_t)hx_db_col_int(st, 1) : 0;
    hx_db_done(st);
    if (step != HX_DB_ROW)
        return -1;
    if (t >= created + give_up)
        return mail_done(a, id, 2, error) == 0 ? 1 : -1;
    /* first_ms, doubling with each failure, at most max_ms; the last try at the give-up time */
    uint64_t delay = first;
    for (uint32_t i = 1; i < attempts && delay < most; i++)
        delay *= 2;
    if (delay > most)
        delay = most;
    uint64_t next = t + delay < created + give_up ? t + delay : created + give_up;
    return EXEC(a, "UPDATE mail_outbox SET attempts = ?, next_at_ms = ?, last_error = ? WHERE id = ?", NULL,
                HX_DB_I(attempts), HX_DB_I(next), HX_DB_T(error ? error : ""), HX_DB_I(id));
}

int hx_mail_counts(hx_accounts_t *a, uint64_t *waiting, uint64_t *sent, uint64_t *given_up)
{
    *waiting = *sent = *given_up = 0;
    hx_db_stmt_t *st = hx_db_prep(a->db, "SELECT sent, count(*) FROM mail_outbox GROUP BY sent");
    int step = st ? HX_DB_ROW : -1;
    while (st && (step = hx_accounts_step(a, st)) == HX_DB_ROW) {
        int64_t s = hx_db_col_int(st, 0);
        uint64_t n = (uint64_t)hx_db_col_int(st, 1);
        *(s == 0 ? waiting : s == 1 ? sent : given_up) += n;
    }
    if (!st)
        failed(a);
    hx_db_done(st);
    return step == HX_DB_DONE ? 0 : -1;
}
