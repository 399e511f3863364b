/* hx_accounts — users, sessions, throttling and CSRF for the portal (see hx_accounts.h). */
#include "hx_accounts.h"

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
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
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
    "CREATE INDEX IF NOT EXISTS audit_clinic ON audit(clinic, seq);";

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

/* Runs sql with up to three text binds and an integer (n >= 0); SQLITE_DONE or SQLITE_ROW
 * becomes 0, anything else -1. */
static int run(hx_accounts_t *a, const char *sql, const char *t1, const char *t2, int64_t n)
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

/* The CSRF key, made once and kept in the store. */
static int csrf_key_load(hx_accounts_t *a)
{
    sqlite3_stmt *st = NULL;
    uint8_t fresh[crypto_auth_KEYBYTES];
    crypto_auth_keygen(fresh);
    if (sqlite3_prepare_v2(a->db, "INSERT OR IGNORE INTO secrets(name, value) VALUES ('csrf', ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_blob(st, 1, fresh, sizeof fresh, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    sodium_memzero(fresh, sizeof fresh);
    if (rc || sqlite3_prepare_v2(a->db, "SELECT value FROM secrets WHERE name = 'csrf'", -1, &st, NULL) != SQLITE_OK)
        return -1;
    rc = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == (int)sizeof a->csrf_key ? 0 : -1;
    if (rc == 0)
        memcpy(a->csrf_key, sqlite3_column_blob(st, 0), sizeof a->csrf_key);
    sqlite3_finalize(st);
    return rc;
}

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
    if (rc != SQLITE_OK || sqlite3_exec(a->db, schema, NULL, NULL, NULL) != SQLITE_OK || csrf_key_load(a) != 0) {
        snprintf(err, cap, "%s: %s", path, a->db ? sqlite3_errmsg(a->db) : "cannot open");
        hx_accounts_close(&a);
        return -1;
    }
    sqlite3_busy_timeout(a->db, 5000);
    *out = a;
    return 0;
}

void hx_accounts_close(hx_accounts_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sqlite3_close((*self_p)->db);
    sodium_memzero((*self_p)->csrf_key, sizeof (*self_p)->csrf_key);
    free(*self_p);
    *self_p = NULL;
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

static int user_change(hx_accounts_t *a, const char *name, const char *sql, const char *arg, char *why, size_t cap)
{
    hx_user_t u;
    int found = name_ok(name) ? user_load(a, name, &u, NULL) : 0;
    if (found != 1) {
        snprintf(why, cap, found < 0 ? "the accounts store failed" : "name: no such user");
        return -1;
    }
    /* the user's sessions end and its failures are forgotten with the change */
    if (run(a, "BEGIN IMMEDIATE", NULL, NULL, -1) || run(a, sql, arg, name, -1) ||
        run(a, "DELETE FROM sessions WHERE name = ?", name, NULL, -1) ||
        run(a, "DELETE FROM failures WHERE name = ?", name, NULL, -1) || run(a, "COMMIT", NULL, NULL, -1)) {
        run(a, "ROLLBACK", NULL, NULL, -1);
        snprintf(why, cap, "the accounts store failed: %s", sqlite3_errmsg(a->db));
        return -1;
    }
    return 0;
}

int hx_user_disable(hx_accounts_t *a, const char *name, char *why, size_t cap)
{
    return user_change(a, name, "UPDATE users SET disabled = 1 WHERE name = ?2", NULL, why, cap);
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
    int rc = user_change(a, name, "UPDATE users SET hash = ?1, disabled = 0 WHERE name = ?2", hash, why, cap);
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
    run(a, "INSERT INTO failures(name, count) VALUES (?1, 1) ON CONFLICT(name) DO UPDATE SET count = count + 1",
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
    if (rc != 0) {
        token[0] = '\0';
        return HX_LOGIN_ERROR;
    }
    run(a, "DELETE FROM failures WHERE name = ?", name, NULL, -1);
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
