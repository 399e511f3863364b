/* hx_accounts — users, sessions, throttling and CSRF for the portal (see hx_accounts.h). */
#include "hx_accounts.h"
#include "hx_accounts_internal.h"
#include "hx_sqlite.h"
#include "hx_totp.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct hx_accounts {
    sqlite3 *db;
    hx_accounts_config_t cfg;
    uint8_t csrf_key[crypto_auth_KEYBYTES];
    uint8_t seal_key[crypto_secretbox_KEYBYTES];    /* seals the TOTP secrets */
    uint8_t api_key[crypto_generichash_KEYBYTES];   /* the API's secret and token hashes (hx_api.c) */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, clinic TEXT NOT NULL, role INTEGER NOT NULL,"
    "  hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    /* a session is known by the BLAKE2b hash of its token: the store never holds a token */
    "CREATE TABLE IF NOT EXISTS sessions (token_hash BLOB PRIMARY KEY, name TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL, seen_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS failures (name TEXT PRIMARY KEY, count INTEGER NOT NULL,"
    "  held_until_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    /* who viewed or did what: never a patient's detail, only ids */
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,"
    "  user TEXT NOT NULL, clinic TEXT NOT NULL, action TEXT NOT NULL, referral_id TEXT NOT NULL,"
    "  detail TEXT NOT NULL, address TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_clinic ON audit(clinic, seq);"
    /* the second factor: a row for each clinic that requires it ("": the network's roles); each
     * user's secret sealed (nonce, then crypto_secretbox) and the last step accepted (replays);
     * a pending sign-in by the hash of its token, with the new secret of a user who enrols */
    "CREATE TABLE IF NOT EXISTS totp_policy (clinic TEXT PRIMARY KEY, changed_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS totp (name TEXT PRIMARY KEY, sealed BLOB NOT NULL, last_step INTEGER NOT NULL,"
    "  enrolled_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS pending (token_hash BLOB PRIMARY KEY, name TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL, enrol BLOB) WITHOUT ROWID;";

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

int hx_accounts_run(hx_accounts_t *a, const char *sql, const char *t1, const char *t2, int64_t n)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (t1)
        sqlite3_bind_text(st, 1, t1, -1, SQLITE_STATIC);
    if (t2)
        sqlite3_bind_text(st, 2, t2, -1, SQLITE_STATIC);
    if (n >= 0)
        sqlite3_bind_int64(st, 3, n);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* A key of the store's own (name: "csrf", "totp"), made once of random bytes and kept. */
static int key_load(hx_accounts_t *a, const char *name, uint8_t *key, size_t len)
{
    sqlite3_stmt *st = NULL;
    uint8_t fresh[32];
    if (len > sizeof fresh)
        return -1;
    randombytes_buf(fresh, len);
    if (sqlite3_prepare_v2(a->db, "INSERT OR IGNORE INTO secrets(name, value) VALUES (?, ?)", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, fresh, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    sodium_memzero(fresh, sizeof fresh);
    if (rc || sqlite3_prepare_v2(a->db, "SELECT value FROM secrets WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == (int)len ? 0 : -1;
    if (rc == 0)
        memcpy(key, sqlite3_column_blob(st, 0), len);
    sqlite3_finalize(st);
    return rc;
}

static int notices_migrate(hx_accounts_t *a);     /* below, with the notices */

int hx_accounts_open(const char *path, const hx_accounts_config_t *cfg, hx_accounts_t **out, char *err, size_t cap)
{
    *out = NULL;
    if (sodium_init() < 0) {
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
    mode_t old = umask(077);
    int rc = sqlite3_open(path, &a->db);
    umask(old);
    if (rc != SQLITE_OK || hx_sqlite_wal(a->db, 10000) != SQLITE_OK || sqlite3_exec(a->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        key_load(a, "csrf", a->csrf_key, sizeof a->csrf_key) != 0 ||
        key_load(a, "totp", a->seal_key, sizeof a->seal_key) != 0 ||
        key_load(a, "api", a->api_key, sizeof a->api_key) != 0 || hx_totp_init() != 0) {
        snprintf(err, cap, "%s: %s", path, a->db ? sqlite3_errmsg(a->db) : "cannot open");
        hx_accounts_close(&a);
        return -1;
    }
    sqlite3_busy_timeout(a->db, 5000);
    if (notices_migrate(a) != 0) {
        snprintf(err, cap, "%s: adding the e-mail notices: %s", path, sqlite3_errmsg(a->db));
        hx_accounts_close(&a);
        return -1;
    }
    if (hx_api_migrate(a) != 0) {
        snprintf(err, cap, "%s: adding the FHIR API's clients: %s", path, sqlite3_errmsg(a->db));
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
    sqlite3_close((*self_p)->db);
    sodium_memzero((*self_p)->csrf_key, sizeof (*self_p)->csrf_key);
    sodium_memzero((*self_p)->seal_key, sizeof (*self_p)->seal_key);
    sodium_memzero((*self_p)->api_key, sizeof (*self_p)->api_key);
    free(*self_p);
    *self_p = NULL;
}

sqlite3 *hx_accounts_db(hx_accounts_t *a)
{
    return a->db;
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
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(a->db, "INSERT INTO users(name, clinic, role, hash, created_ms) VALUES (?, ?, ?, ?, ?)",
                                -1, &st, NULL) == SQLITE_OK ? 0 : -1;
    if (rc == 0) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, network ? "" : clinic, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, (int)role);
        sqlite3_bind_text(st, 4, hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)now_ms(a));
        int step = sqlite3_step(st);
        rc = step == SQLITE_DONE ? 0 : -1;
        snprintf(why, cap, "%s", step == SQLITE_CONSTRAINT ? "name: taken" : sqlite3_errmsg(a->db));
    }
    sqlite3_finalize(st);
    sodium_memzero(hash, sizeof hash);
    return rc;
}

/* 1 when the user exists, 0 not, -1 error. */
static int user_load(hx_accounts_t *a, const char *name, hx_user_t *u, char hash[crypto_pwhash_STRBYTES])
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT clinic, role, hash, disabled FROM users WHERE name = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (found == 1) {
        memset(u, 0, sizeof *u);
        snprintf(u->name, sizeof u->name, "%s", name);
        snprintf(u->clinic, sizeof u->clinic, "%s", (const char *)sqlite3_column_text(st, 0));
        u->role = (hx_user_role_t)sqlite3_column_int(st, 1);
        if (hash)
            snprintf(hash, crypto_pwhash_STRBYTES, "%s", (const char *)sqlite3_column_text(st, 2));
        u->disabled = sqlite3_column_int(st, 3) != 0;
    }
    sqlite3_finalize(st);
    return found;
}

static int user_change(hx_accounts_t *a, const char *name, const char *sql, const char *arg, bool forget_totp,
                       char *why, size_t cap)
{
    hx_user_t u;
    int found = name_ok(name) ? user_load(a, name, &u, NULL) : 0;
    if (found != 1) {
        snprintf(why, cap, found < 0 ? "the accounts store failed" : "name: no such user");
        return -1;
    }
    /* the user's sessions and pending sign-ins end and its failures are forgotten with the change */
    if (hx_accounts_run(a, "BEGIN IMMEDIATE", NULL, NULL, -1) || hx_accounts_run(a, sql, arg, name, -1) ||
        hx_accounts_run(a, "DELETE FROM sessions WHERE name = ?", name, NULL, -1) ||
        hx_accounts_run(a, "DELETE FROM pending WHERE name = ?", name, NULL, -1) ||
        (forget_totp && hx_accounts_run(a, "DELETE FROM totp WHERE name = ?", name, NULL, -1)) ||
        hx_accounts_run(a, "DELETE FROM failures WHERE name = ?", name, NULL, -1) || hx_accounts_run(a, "COMMIT", NULL, NULL, -1)) {
        hx_accounts_run(a, "ROLLBACK", NULL, NULL, -1);
        snprintf(why, cap, "the accounts store failed: %s", sqlite3_errmsg(a->db));
        return -1;
    }
    return 0;
}

int hx_user_disable(hx_accounts_t *a, const char *name, char *why, size_t cap)
{
    return user_change(a, name, "UPDATE users SET disabled = 1 WHERE name = ?2", NULL, false, why, cap);
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
    int rc = user_change(a, name, "UPDATE users SET hash = ?1, disabled = 0 WHERE name = ?2", hash, true, why, cap);
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
    hx_accounts_run(a, "INSERT INTO failures(name, count) VALUES (?1, 1) ON CONFLICT(name) DO UPDATE SET count = count + 1",
        name, NULL, -1);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "UPDATE failures SET held_until_ms = ?1, count = 0 WHERE name = ?2 AND count >= ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(t + (uint64_t)a->cfg.hold_s * 1000));
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, (int)a->cfg.max_failures);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

static bool held(hx_accounts_t *a, const char *name, uint64_t t)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT held_until_ms FROM failures WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
        return true;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    bool h = sqlite3_step(st) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) > t;
    sqlite3_finalize(st);
    return h;
}

/* A new session of name: its token in token. 0, or -1 (token ""). */
static int session_open(hx_accounts_t *a, const char *name, uint64_t t, char token[HX_TOKEN_LEN + 1])
{
    uint8_t h[32];
    token_new(token);
    token_hash(token, h);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(a->db, "INSERT INTO sessions(token_hash, name, created_ms, seen_ms) VALUES (?, ?, ?, ?)",
                                -1, &st, NULL) == SQLITE_OK ? 0 : -1;
    if (rc == 0) {
        sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)t);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)t);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
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
    if (held(a, name, t))
        return HX_LOGIN_HELD;
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
    hx_accounts_run(a, "DELETE FROM failures WHERE name = ?", name, NULL, -1);
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
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT name, created_ms, seen_ms FROM sessions WHERE token_hash = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
    char name[HX_USER_MAX + 1] = "";
    bool live = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(st, 0));
        uint64_t created = (uint64_t)sqlite3_column_int64(st, 1), seen = (uint64_t)sqlite3_column_int64(st, 2);
        live = t < created + (uint64_t)a->cfg.absolute_s * 1000 && t < seen + (uint64_t)a->cfg.idle_s * 1000;
    }
    sqlite3_finalize(st);
    if (live && user_load(a, name, user, NULL) == 1 && !user->disabled) {
        sqlite3_stmt *up = NULL;
        if (touch && sqlite3_prepare_v2(a->db, "UPDATE sessions SET seen_ms = ? WHERE token_hash = ?", -1, &up,
                                        NULL) == SQLITE_OK) {
            sqlite3_bind_int64(up, 1, (sqlite3_int64)t);
            sqlite3_bind_blob(up, 2, h, sizeof h, SQLITE_STATIC);
            sqlite3_step(up);
        }
        sqlite3_finalize(up);
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
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "DELETE FROM sessions WHERE token_hash = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
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
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db,
                           "SELECT name, clinic, role, disabled FROM users WHERE ?1 IS NULL OR clinic = ?1 "
                           "ORDER BY clinic, name",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (clinic)
        sqlite3_bind_text(st, 1, clinic, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        hx_user_t u = {0};
        snprintf(u.name, sizeof u.name, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(u.clinic, sizeof u.clinic, "%s", (const char *)sqlite3_column_text(st, 1));
        u.role = (hx_user_role_t)sqlite3_column_int(st, 2);
        u.disabled = sqlite3_column_int(st, 3) != 0;
        fn(ud, &u);
    }
    sqlite3_finalize(st);
    return 0;
}

int hx_audit(hx_accounts_t *a, const hx_audit_t *e)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db,
                           "INSERT INTO audit(at_ms, user, clinic, action, referral_id, detail, address) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(e->at_ms ? e->at_ms : now_ms(a)));
    const char *t[] = {e->user, e->clinic, e->action, e->referral_id, e->detail, e->address};
    for (int i = 0; i < 6; i++)
        sqlite3_bind_text(st, i + 2, t[i] ? t[i] : "", -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

int hx_audit_each(hx_accounts_t *a, const char *clinic, const char *referral_id, size_t limit,
                  void (*fn)(void *ud, const hx_audit_t *e), void *ud)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db,
                           "SELECT at_ms, user, clinic, action, referral_id, detail, address FROM audit "
                           "WHERE (?1 IS NULL OR clinic = ?1) AND (?2 IS NULL OR referral_id = ?2) "
                           "ORDER BY seq DESC LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (clinic)
        sqlite3_bind_text(st, 1, clinic, -1, SQLITE_STATIC);
    if (referral_id)
        sqlite3_bind_text(st, 2, referral_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)(limit ? limit : 100));
    while (sqlite3_step(st) == SQLITE_ROW) {
        hx_audit_t e = {.at_ms = (uint64_t)sqlite3_column_int64(st, 0)};
        const char **f[] = {&e.user, &e.clinic, &e.action, &e.referral_id, &e.detail, &e.address};
        for (int i = 0; i < 6; i++)
            *f[i] = (const char *)sqlite3_column_text(st, i + 1);
        fn(ud, &e);
    }
    sqlite3_finalize(st);
    return 0;
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
static int unseal(const hx_accounts_t *a, const void *blob, int n, uint8_t secret[HX_TOTP_SECRET_BYTES])
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
    sqlite3_stmt *st = NULL;
    int rc = hx_accounts_run(a, "BEGIN IMMEDIATE", NULL, NULL, -1);
    if (rc == 0 && on) {
        rc = sqlite3_prepare_v2(a->db, "INSERT OR REPLACE INTO totp_policy(clinic, changed_ms) VALUES (?, ?)", -1, &st,
                                NULL) == SQLITE_OK ? 0 : -1;
        if (rc == 0) {
            sqlite3_bind_text(st, 1, clinic, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms(a));
            rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        }
        sqlite3_finalize(st);
        /* sessions opened with a password alone end: everyone signs in again with a code */
        if (rc == 0)
            rc = hx_accounts_run(a, "DELETE FROM sessions WHERE name IN (SELECT name FROM users WHERE clinic = ?)", clinic, NULL,
                     -1);
    } else if (rc == 0) {
        rc = hx_accounts_run(a, "DELETE FROM totp_policy WHERE clinic = ?", clinic, NULL, -1);
    }
    if (rc != 0 || hx_accounts_run(a, "COMMIT", NULL, NULL, -1) != 0) {
        snprintf(why, cap, "the accounts store failed: %s", sqlite3_errmsg(a->db));
        hx_accounts_run(a, "ROLLBACK", NULL, NULL, -1);
        return -1;
    }
    return 0;
}

/* 1 when sql (one text bind) finds a row, 0 when not, -1 on error. */
static int exists(hx_accounts_t *a, const char *sql, const char *arg)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
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
    sqlite3_stmt *st = NULL;
    int rc = hx_accounts_run(a, "DELETE FROM pending WHERE name = ?1 OR created_ms <= ?3", name, NULL,
                 (int64_t)(t > HX_PENDING_S * 1000ull ? t - HX_PENDING_S * 1000ull : 0));
    if (rc == 0)
        rc = sqlite3_prepare_v2(a->db, "INSERT INTO pending(token_hash, name, created_ms, enrol) VALUES (?, ?, ?, ?)",
                                -1, &st, NULL) == SQLITE_OK ? 0 : -1;
    if (rc == 0) {
        sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)t);
        if (enrolled)
            sqlite3_bind_null(st, 4);
        else
            sqlite3_bind_blob(st, 4, sealed, sizeof sealed, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    if (rc != 0)
        token[0] = '\0';
    return rc;
}

/* A live pending sign-in by token: 1 with its user's name, created time and new secret (when
 * enrolling: *has_enrol), 0 when there is none (an expired one is removed), -1 on error. */
static int pending_load(hx_accounts_t *a, const char *token, uint64_t t, char name[HX_USER_MAX + 1],
                        uint64_t *created, uint8_t enrol[HX_TOTP_SECRET_BYTES], bool *has_enrol)
{
    if (!token || strlen(token) != HX_TOKEN_LEN)
        return 0;
    uint8_t h[32];
    token_hash(token, h);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT name, created_ms, enrol FROM pending WHERE token_hash = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    *has_enrol = false;
    if (found == 1) {
        snprintf(name, HX_USER_MAX + 1, "%s", (const char *)sqlite3_column_text(st, 0));
        *created = (uint64_t)sqlite3_column_int64(st, 1);
        if (t >= *created + HX_PENDING_S * 1000ull)
            found = 0;
        else if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
            *has_enrol = true;
            if (unseal(a, sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2), enrol) != 0)
                found = -1;
        }
    }
    sqlite3_finalize(st);
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
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "DELETE FROM pending WHERE token_hash = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
}

/* The user's confirmed secret and the last step accepted: 1, 0 when none, -1 on error. */
static int totp_load(hx_accounts_t *a, const char *name, uint8_t secret[HX_TOTP_SECRET_BYTES], int64_t *last_step)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT sealed, last_step FROM totp WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (found == 1) {
        *last_step = sqlite3_column_int64(st, 1);
        if (unseal(a, sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0), secret) != 0)
            found = -1;
    }
    sqlite3_finalize(st);
    return found;
}

/* The code was right: the secret kept (enrolling) or its step recorded, the pending sign-in
 * ended, a session opened and the failures forgotten, all or nothing. The step must be later
 * than the one recorded, also against another process sharing the store. */
static int totp_accept(hx_accounts_t *a, const char *pending, const char *name, const uint8_t *enrol, int64_t step,
                       uint64_t t, char token[HX_TOKEN_LEN + 1])
{
    uint8_t h[32], sealed[SEALED_LEN];
    sqlite3_stmt *st = NULL;
    token_hash(pending, h);
    int rc = hx_accounts_run(a, "BEGIN IMMEDIATE", NULL, NULL, -1);
    if (rc == 0) {
        if (enrol)
            seal(a, enrol, sealed);
        rc = sqlite3_prepare_v2(a->db,
                                enrol ? "INSERT OR REPLACE INTO totp(name, last_step, enrolled_ms, sealed) "
                                        "VALUES (?1, ?2, ?3, ?4)"
                                      : "UPDATE totp SET last_step = ?2 WHERE name = ?1 AND last_step < ?2",
                                -1, &st, NULL) == SQLITE_OK ? 0 : -1;
    }
    if (rc == 0) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, step);
        if (enrol) {
            sqlite3_bind_int64(st, 3, (sqlite3_int64)t);
            sqlite3_bind_blob(st, 4, sealed, sizeof sealed, SQLITE_STATIC);
        }
        rc = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(a->db) == 1 ? 0 : -1;
    }
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_prepare_v2(a->db, "DELETE FROM pending WHERE token_hash = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(a->db) == 1 ? 0 : -1;
        sqlite3_finalize(st);
    }
    if (rc == 0)
        rc = session_open(a, name, t, token);
    if (rc == 0)
        rc = hx_accounts_run(a, "DELETE FROM failures WHERE name = ?", name, NULL, -1);
    if (rc == 0)
        rc = hx_accounts_run(a, "COMMIT", NULL, NULL, -1);
    if (rc != 0) {
        hx_accounts_run(a, "ROLLBACK", NULL, NULL, -1);
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
    } else if (held(a, name, t)) {
        hx_pending_end(a, pending);         /* after the hold: the password first again */
        out = HX_LOGIN_HELD;
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

/* The notices' schema, also on a store made before them: users gain email and notify (ALTER
 * TABLE when PRAGMA table_info does not list them), and the outbox is made. One IMMEDIATE
 * transaction, so two programs opening one older file at once cannot both add a column. */
static int notices_migrate(hx_accounts_t *a)
{
    if (hx_accounts_run(a, "BEGIN IMMEDIATE", NULL, NULL, -1) != 0)
        return -1;
    bool email = false, notify = false;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(a->db, "PRAGMA table_info(users)", -1, &st, NULL) == SQLITE_OK ? 0 : -1;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *col = (const char *)sqlite3_column_text(st, 1);
        email = email || (col && !strcmp(col, "email"));
        notify = notify || (col && !strcmp(col, "notify"));
    }
    sqlite3_finalize(st);
    if (rc == 0 && !email)
        rc = hx_accounts_run(a, "ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT ''", NULL, NULL, -1);
    if (rc == 0 && !notify)
        rc = hx_accounts_run(a, "ALTER TABLE users ADD COLUMN notify INTEGER NOT NULL DEFAULT 0", NULL, NULL, -1);
    /* sent: 0 waiting, 1 sent, 2 given up; dedup: the event's key and the user */
    if (rc == 0 && sqlite3_exec(a->db,
                                "CREATE TABLE IF NOT EXISTS mail_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                "  dedup TEXT NOT NULL UNIQUE, user TEXT NOT NULL, to_addr TEXT NOT NULL,"
                                "  subject TEXT NOT NULL, body TEXT NOT NULL, created_ms INTEGER NOT NULL,"
                                "  attempts INTEGER NOT NULL DEFAULT 0, next_at_ms INTEGER NOT NULL,"
                                "  sent INTEGER NOT NULL DEFAULT 0, done_ms INTEGER NOT NULL DEFAULT 0,"
                                "  last_error TEXT NOT NULL DEFAULT '');"
                                "CREATE INDEX IF NOT EXISTS mail_outbox_due ON mail_outbox(sent, next_at_ms);",
                                NULL, NULL, NULL) != SQLITE_OK)
        rc = -1;
    if (rc == 0)
        rc = hx_accounts_run(a, "COMMIT", NULL, NULL, -1);
    if (rc != 0)
        hx_accounts_run(a, "ROLLBACK", NULL, NULL, -1);
    return rc;
}

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
    sqlite3_stmt *st = NULL;
    if (!name_ok(name) || sqlite3_prepare_v2(a->db,
                                             "UPDATE users SET email = coalesce(?1, email),"
                                             " notify = CASE WHEN ?2 < 0 THEN notify ELSE ?2 END WHERE name = ?3",
                                             -1, &st, NULL) != SQLITE_OK) {
        snprintf(why, cap, name_ok(name) ? "the accounts store failed" : "name: no such user");
        return -1;
    }
    if (email)
        sqlite3_bind_text(st, 1, email, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, notify);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) {
        snprintf(why, cap, "the accounts store failed: %s", sqlite3_errmsg(a->db));
        return -1;
    }
    if (sqlite3_changes(a->db) == 0) {
        snprintf(why, cap, "name: no such user");
        return -1;
    }
    return 0;
}

int hx_user_notify(hx_accounts_t *a, const char *name, char email[HX_EMAIL_MAX + 1], unsigned *notify)
{
    sqlite3_stmt *st = NULL;
    email[0] = '\0';
    *notify = 0;
    if (!name_ok(name) ||
        sqlite3_prepare_v2(a->db, "SELECT email, notify FROM users WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(email, HX_EMAIL_MAX + 1, "%s", (const char *)sqlite3_column_text(st, 0));
        *notify = (unsigned)sqlite3_column_int(st, 1) & HX_NOTIFY_ALL;
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* The recipients of clinic for kind: enabled clinic users with an address and that wish. */
#define RECIPIENTS                                                                                                \
    "FROM users WHERE clinic = ?1 AND clinic != '' AND disabled = 0 AND email != '' AND (notify & ?2) != 0"

int hx_notice_recipients(hx_accounts_t *a, const char *clinic, unsigned kind,
                         void (*fn)(void *ud, const char *name, const char *email), void *ud)
{
    sqlite3_stmt *st = NULL;
    if (!clinic || sqlite3_prepare_v2(a->db, "SELECT name, email " RECIPIENTS " ORDER BY name", -1, &st, NULL) !=
                       SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, clinic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)kind);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *email = (const char *)sqlite3_column_text(st, 1);
        if (hx_email_valid(email))      /* set through hx_user_set_notify; checked again all the same */
            fn(ud, (const char *)sqlite3_column_text(st, 0), email);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
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
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db,
                           "INSERT OR IGNORE INTO mail_outbox(dedup, user, to_addr, subject, body, created_ms,"
                           " next_at_ms) SELECT ?3 || ':' || name, name, email, ?4, ?5, ?6, ?6 " RECIPIENTS
                           " ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    uint64_t t = now_ms(a);
    sqlite3_bind_text(st, 1, clinic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)kind);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)t);
    int rc = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(a->db) : -1;
    sqlite3_finalize(st);
    return rc;
}

int hx_mail_due(hx_accounts_t *a, hx_mail_t *m, uint64_t *next_ms)
{
    *next_ms = 0;
    /* a user disabled, or without an address now, gets nothing more of what waits */
    if (hx_accounts_run(a, "UPDATE mail_outbox SET sent = 2, done_ms = ?3, last_error = 'the user was disabled or has no address'"
               " WHERE sent = 0 AND user NOT IN (SELECT name FROM users WHERE disabled = 0 AND email != '')",
            NULL, NULL, (int64_t)now_ms(a)) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db,
                           "SELECT id, user, to_addr, subject, body, attempts, created_ms, next_at_ms FROM mail_outbox"
                           " WHERE sent = 0 ORDER BY next_at_ms, id LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    int step = sqlite3_step(st), rc = step == SQLITE_DONE ? 0 : step == SQLITE_ROW ? 1 : -1;
    if (rc == 1) {
        memset(m, 0, sizeof *m);
        m->id = sqlite3_column_int64(st, 0);
        snprintf(m->user, sizeof m->user, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(m->to, sizeof m->to, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(m->subject, sizeof m->subject, "%s", (const char *)sqlite3_column_text(st, 3));
        snprintf(m->body, sizeof m->body, "%s", (const char *)sqlite3_column_text(st, 4));
        m->attempts = (uint32_t)sqlite3_column_int(st, 5);
        m->created_ms = (uint64_t)sqlite3_column_int64(st, 6);
        m->next_at_ms = (uint64_t)sqlite3_column_int64(st, 7);
        if (m->next_at_ms > now_ms(a)) {
            *next_ms = m->next_at_ms;
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Marks id done (sent 1 or 2) and forgets notices done more than MAIL_KEEP_MS ago. */
static int mail_done(hx_accounts_t *a, int64_t id, int sent, const char *error)
{
    uint64_t t = now_ms(a);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db,
                           "UPDATE mail_outbox SET sent = ?1, done_ms = ?2, last_error = coalesce(?3, last_error),"
                           " attempts = attempts + (?1 = 2) WHERE id = ?4 AND sent = 0",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int(st, 1, sent);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)t);
    if (error)
        sqlite3_bind_text(st, 3, error, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, id);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    if (rc == 0 && t > MAIL_KEEP_MS)
        hx_accounts_run(a, "DELETE FROM mail_outbox WHERE sent != 0 AND done_ms < ?3", NULL, NULL, (int64_t)(t - MAIL_KEEP_MS));
    return rc;
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
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT attempts, created_ms FROM mail_outbox WHERE id = ? AND sent = 0", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    uint32_t attempts = step == SQLITE_ROW ? (uint32_t)sqlite3_column_int(st, 0) + 1 : 0;
    uint64_t created = step == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 1) : 0;
    sqlite3_finalize(st);
    if (step != SQLITE_ROW)
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
    if (sqlite3_prepare_v2(a->db,
                           "UPDATE mail_outbox SET attempts = ?1, next_at_ms = ?2, last_error = ?3 WHERE id = ?4",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int(st, 1, (int)attempts);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)next);
    sqlite3_bind_text(st, 3, error ? error : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, id);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

int hx_mail_counts(hx_accounts_t *a, uint64_t *waiting, uint64_t *sent, uint64_t *given_up)
{
    *waiting = *sent = *given_up = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT sent, count(*) FROM mail_outbox GROUP BY sent", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int s = sqlite3_column_int(st, 0);
        uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);
        *(s == 0 ? waiting : s == 1 ? sent : given_up) += n;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}
