/* hx_clinic — the handle, the local store and reading it (hx_clinic.h). */
#include "hx_clinic_internal.h"
#include "hx_curve.h"
#include "hx_seal_store.h"
#include "hx_sqlite.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cl_fail(hx_clinic_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

int cl_broker_fail(hx_clinic_t *c, int code, const char *what)
{
    const char *detail = c->client ? hx_client_error(c->client) : "";
    return cl_fail(c, code, "%s: %s%s%s", what, hx_strerror(code), detail[0] ? ": " : "", detail);
}

bool cl_stopping(const hx_clinic_t *c)
{
    return c->stop && *c->stop;
}

/* The schema, made or upgraded in one write transaction: another program of this clinic (a
 * watch, say) may be opening the same store right now, and one of them does it while the
 * other finds it done. */
static const char schema[] =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS received ("
    "  id BLOB PRIMARY KEY, type TEXT NOT NULL, referral_id TEXT NOT NULL,"
    "  from_name TEXT NOT NULL, at_ms INTEGER NOT NULL, payload BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS received_referral ON received(referral_id, at_ms);"
    "CREATE TABLE IF NOT EXISTS sent ("
    "  referral_id TEXT PRIMARY KEY, ref TEXT NOT NULL, file TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    "  patient TEXT NOT NULL DEFAULT '');"
    /* what was dropped instead of stored (hx_issuer.h): who sent which type, and why; never
     * the payload, which nobody here may trust */
    "CREATE TABLE IF NOT EXISTS dropped ("
    "  id BLOB PRIMARY KEY, type TEXT NOT NULL, sender TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    "  why TEXT NOT NULL);"
    /* the id of the key the store's values are sealed with (one row, hx_seal.h): a store
     * opened with another key is refused at once, naming the key id it needs */
    "CREATE TABLE IF NOT EXISTS store_key (one INTEGER PRIMARY KEY CHECK (one = 1), key_id TEXT NOT NULL);";

/* The values that can name a patient, sealed with the store key (table, key, column). The rest
 * (ids, types, times, senders, why a message was dropped) stays clear for queries. */
static const hx_sealed_column_t sealed_columns[] = {
    {"received", "id", "payload"}, {"sent", "referral_id", "body"}, {"sent", "referral_id", "patient"},
    {"sent", "referral_id", "file"},
};
#define N_SEALED (sizeof sealed_columns / sizeof *sealed_columns)

/* Stores made before the inbox showed the patients of sent referrals lack sent.patient;
 * those made before the portal showed a sent referral whole lack sent.body (the Referral as
 * sent, protobuf; NULL for referrals sent before). */
static int upgrade_store(sqlite3 *db, char **err)
{
    static const char *const added[][2] = {
        {"SELECT patient FROM sent LIMIT 0", "ALTER TABLE sent ADD COLUMN patient TEXT NOT NULL DEFAULT ''"},
        {"SELECT body FROM sent LIMIT 0", "ALTER TABLE sent ADD COLUMN body BLOB"},
    };
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof added / sizeof *added; i++) {
        sqlite3_stmt *probe = NULL;
        if (sqlite3_prepare_v2(db, added[i][0], -1, &probe, NULL) != SQLITE_OK)
            rc = sqlite3_exec(db, added[i][1], NULL, NULL, err);
        sqlite3_finalize(probe);
    }
    return rc;
}

int cl_bind_sealed(hx_clinic_t *c, sqlite3_stmt *st, int idx, const void *data, size_t len)
{
    uint8_t *v;
    size_t n;
    if (hx_seal(c->key, data, len, &v, &n) != 0)
        return -1;
    return sqlite3_bind_blob(st, idx, v, (int)n, free) == SQLITE_OK ? 0 : -1;
}

int cl_column_open(hx_clinic_t *c, sqlite3_stmt *st, int col, uint8_t **out, size_t *len)
{
    char why[400];
    const uint8_t *v = sqlite3_column_blob(st, col);
    if (hx_unseal(c->key, v, (size_t)sqlite3_column_bytes(st, col), out, len, why, sizeof why) != 0)
        return cl_fail(c, HX_EIO, "reading the store with the store key from %s: %s", c->key_from, why);
    return 0;
}

void hx_clinic_store_subkey(const uint8_t data_key[32], const char *clinic, uint8_t out[32])
{
    static const char label[] = "handoff clinic store ";
    crypto_generichash_state h;
    crypto_generichash_init(&h, data_key, 32, 32);
    crypto_generichash_update(&h, (const uint8_t *)label, sizeof label - 1);
    crypto_generichash_update(&h, (const uint8_t *)clinic, strlen(clinic));
    crypto_generichash_final(&h, out, 32);
    sodium_memzero(&h, sizeof h);
}

static void home_dir(const char *home, char *out, size_t cap)
{
    const char *h = getenv("HOME");
    if (home)
        snprintf(out, cap, "%s", home);
    else
        snprintf(out, cap, "%s/.handoff", h && *h ? h : ".");
}

void hx_clinic_store_key_path(const char *home, const char *clinic, char *out, size_t cap)
{
    char dir[4096];
    home_dir(home, dir, sizeof dir);
    snprintf(out, cap, "%s/%s.store.key", dir, clinic);
}

const char *hx_clinic_store_key_id(const hx_clinic_t *c)
{
    return c->key_id;
}

const char *hx_clinic_store_key_from(const hx_clinic_t *c)
{
    return c->key_from;
}

size_t hx_clinic_sealed_in_place(const hx_clinic_t *c)
{
    return c->sealed_in_place;
}

/* The key id the store says its values are sealed with, "" when it says none (a new store,
 * or one written before values were sealed). */
static void stored_key_id(sqlite3 *db, char out[HX_SEAL_ID_TEXT])
{
    sqlite3_stmt *st;
    out[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT key_id FROM store_key WHERE one = 1", -1, &st, NULL) != SQLITE_OK)
        return;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, HX_SEAL_ID_TEXT, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

/* The store key (see hx_clinic_opts_t) into c->key, checked against the id the store holds,
 * and a clear store sealed in place; inside the transaction that opens the store. */
static int key_settle(hx_clinic_t *c, const hx_clinic_opts_t *o, const char *dir, const char *path, char *err,
                      size_t cap)
{
    char stored[HX_SEAL_ID_TEXT], why[4400], file[4400];
    stored_key_id(c->db, stored);
    snprintf(file, sizeof file, "%s/%s.store.key", dir, c->clinic);
    if (o->store_key) {
        memcpy(c->key, o->store_key, sizeof c->key);
        snprintf(c->key_from, sizeof c->key_from, "%s", o->store_key_from ? o->store_key_from : "the key given");
    } else if (o->store_key_file) {
        snprintf(c->key_from, sizeof c->key_from, "%s", o->store_key_file);
        if (hx_data_key_load(o->store_key_file, c->key, why, sizeof why) != 0) {
            snprintf(err, cap, "the store key: %s (make one with: handoff datakey FILE)", why);
            return HX_EINVAL;
        }
    } else {
        snprintf(c->key_from, sizeof c->key_from, "%s", file);
        if (access(file, F_OK) != 0 && stored[0]) {
            snprintf(err, cap, "%s is sealed with the store key of id %s, and its key file %s is missing: restore it "
                     "from where it is kept, or name the key with --store-key FILE (HANDOFF_STORE_KEY)", path, stored,
                     file);
            return HX_EINVAL;
        }
        char hex[65];
        if (access(file, F_OK) != 0) {
            hx_data_key_generate(hex);
            int wrote = hx_key_file_write(file, hex, 0600, why, sizeof why);
            sodium_memzero(hex, sizeof hex);
            if (wrote != 0) {
                snprintf(err, cap, "making the store key: %s", why);
                return HX_EIO;
            }
        }
        if (hx_data_key_load(file, c->key, why, sizeof why) != 0) {
            snprintf(err, cap, "the store key: %s", why);
            return HX_EINVAL;
        }
    }
    hx_seal_key_id(c->key, c->key_id);
    if (stored[0]) {
        if (strcmp(stored, c->key_id) == 0)
            return 0;
        /* a rekey that stopped between its commit and putting the new key file in place */
        char next[4500], hint[9200] = "";
        uint8_t k[HX_SEAL_KEY_LEN];
        char next_id[HX_SEAL_ID_TEXT];
        snprintf(next, sizeof next, "%s.new", file);
        if (hx_data_key_load(next, k, why, sizeof why) == 0) {
            hx_seal_key_id(k, next_id);
            if (strcmp(next_id, stored) == 0)
                snprintf(hint, sizeof hint, "; %s has it (a rekey stopped before it replaced %s): move it there",
                         next, file);
            sodium_memzero(k, sizeof k);
        }
        snprintf(err, cap, "%s is sealed with the store key of id %s, and the key from %s has id %s: give the key "
                 "with id %s%s", path, stored, c->key_from, c->key_id, stored, hint);
        return HX_EINVAL;
    }
    size_t n = 0;
    if (hx_seal_columns(c->db, sealed_columns, N_SEALED, c->key, c->key, true, &n, why, sizeof why) != 0) {
        snprintf(err, cap, "%s: sealing the store in place: %s", path, why);
        return HX_EIO;
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->db, "INSERT INTO store_key(one, key_id) VALUES (1, ?)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, c->key_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        snprintf(err, cap, "%s: recording the store key: %s", path, sqlite3_errmsg(c->db));
        return HX_EIO;
    }
    c->sealed_in_place = n;
    return 0;
}

int hx_clinic_rekey(hx_clinic_t *c, const uint8_t new_key[32], size_t *count)
{
    char why[4400];
    *count = 0;
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return cl_fail(c, HX_EIO, "rekeying the store: %s", sqlite3_errmsg(c->db));
    char id[HX_SEAL_ID_TEXT];
    hx_seal_key_id(new_key, id);
    sqlite3_stmt *st = NULL;
    int rc = hx_seal_columns(c->db, sealed_columns, N_SEALED, c->key, new_key, false, count, why, sizeof why);
    if (rc != 0)
        cl_fail(c, HX_EIO, "rekeying the store: %s", why);
    else if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO store_key(one, key_id) VALUES (1, ?)", -1, &st,
                                NULL) != SQLITE_OK ||
             sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE ||
             sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = cl_fail(c, HX_EIO, "rekeying the store: %s", sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    if (rc != 0) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        *count = 0;
        return HX_EIO;
    }
    memcpy(c->key, new_key, sizeof c->key);
    memcpy(c->key_id, id, sizeof c->key_id);
    snprintf(c->key_from, sizeof c->key_from, "the new key");
    if (hx_seal_scrub(c->db, why, sizeof why) != 0)
        return cl_fail(c, HX_EIO, "rekeyed, but %s (run it again: sqlite3 FILE VACUUM)", why);
    return cl_fail(c, 0, "%s", "");
}

static int store_open(hx_clinic_t *c, const hx_clinic_opts_t *o, char *err, size_t cap)
{
    const char *home = o->home;
    char dir[4096], path[4200];
    home_dir(home, dir, sizeof dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, cap, "--home %s: %s", dir, strerror(errno));
        return HX_EIO;
    }
    snprintf(path, sizeof path, "%s/%s.db", dir, c->clinic);
    mode_t old = umask(077);
    int rc = sqlite3_open(path, &c->db);
    umask(old);
    if (rc != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", path, c->db ? sqlite3_errmsg(c->db) : "out of memory");
        return rc == SQLITE_NOMEM ? HX_ENOMEM : HX_EIO;
    }
    sqlite3_busy_timeout(c->db, 5000);
    char *why = NULL;
    if (hx_sqlite_wal(c->db, 5000) != SQLITE_OK ||
        sqlite3_exec(c->db, "PRAGMA secure_delete=ON", NULL, NULL, &why) != SQLITE_OK ||
        sqlite3_exec(c->db, schema, NULL, NULL, &why) != SQLITE_OK || upgrade_store(c->db, &why) != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", path, why ? why : sqlite3_errmsg(c->db));
        sqlite3_free(why);
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return HX_EIO;
    }
    rc = key_settle(c, o, dir, path, err, cap);
    if (rc != 0) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, &why) != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", path, why ? why : sqlite3_errmsg(c->db));
        sqlite3_free(why);
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return HX_EIO;
    }
    if (c->sealed_in_place && hx_seal_scrub(c->db, err, cap) != 0)
        return HX_EIO;
    return 0;
}

static int copy_key(char dst[41], const char *src)
{
    if (!src)
        return 0;
    if (strlen(src) != 40)
        return -1;
    memcpy(dst, src, 41);
    return 0;
}

int hx_clinic_open(const hx_clinic_opts_t *o, hx_clinic_t **out, char *err, size_t cap)
{
    *out = NULL;
    if (!o->broker || !o->broker[0] || !o->clinic || !hx_name_valid(o->clinic)) {
        snprintf(err, cap, "%s", !o->broker || !o->broker[0] ? "the broker's endpoint is not set"
                                                             : "the clinic id must be 1-64 characters of [A-Za-z0-9._-]");
        return HX_EINVAL;
    }
    bool some = o->curve_server || o->curve_public || o->curve_secret;
    bool all = o->curve_server && o->curve_public && o->curve_secret;
    hx_clinic_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, cap, "out of memory");
        return HX_ENOMEM;
    }
    if ((some && !all) || copy_key(c->curve_server, o->curve_server) || copy_key(c->curve_public, o->curve_public) ||
        copy_key(c->curve_secret, o->curve_secret)) {
        snprintf(err, cap, "CURVE needs the broker's public key and this clinic's key pair, each 40 Z85 characters");
        free(c);
        return HX_EINVAL;
    }
    c->broker = strdup(o->broker);
    c->clinic = strdup(o->clinic);
    c->timeout_ms = o->timeout_ms;
    c->role = o->role == HX_ROLE_REVIEWER ? HX_ROLE_REVIEWER : HX_ROLE_CLINIC;
    c->stop = o->stop;
    if (!c->broker || !c->clinic) {
        hx_clinic_destroy(&c);
        snprintf(err, cap, "out of memory");
        return HX_ENOMEM;
    }
    int rc = store_open(c, o, err, cap);
    if (rc) {
        hx_clinic_destroy(&c);
        return rc;
    }
    *out = c;
    return 0;
}

void hx_clinic_destroy(hx_clinic_t **self_p)
{
    hx_clinic_t *c = self_p ? *self_p : NULL;
    if (!c)
        return;
    hx_client_destroy(&c->client);
    hx_attach_typer_close(&c->typer);
    sqlite3_close(c->db);
    sodium_memzero(c->key, sizeof c->key);
    free(c->broker);
    free(c->clinic);
    free(c);
    *self_p = NULL;
}

int hx_clinic_connect(hx_clinic_t *c)
{
    if (c->client)
        return 0;
    char err[512];
    hx_client_opts_t o = {.endpoint = c->broker, .clinic = c->clinic, .role = c->role,
                          .timeout_ms = c->timeout_ms};
    if (c->curve_server[0]) {
        o.curve_server_key = c->curve_server;
        o.curve_public = c->curve_public;
        o.curve_secret = c->curve_secret;
    }
    int rc = hx_client_open(&o, &c->client, err, sizeof err);
    return rc ? cl_fail(c, rc, "%s", err) : cl_fail(c, 0, "%s", "");
}

void hx_clinic_disconnect(hx_clinic_t *c)
{
    hx_client_destroy(&c->client);
}

hx_client_t *hx_clinic_client(hx_clinic_t *c)
{
    return c->client;
}

const char *hx_clinic_name(const hx_clinic_t *c)
{
    return c->clinic;
}

const char *hx_clinic_error(const hx_clinic_t *c)
{
    return c->err;
}

size_t hx_clinic_dropped(const hx_clinic_t *c)
{
    return c->dropped;
}

void hx_patient_name(const Handoff__Referral *r, char *out, size_t cap)
{
    const Handoff__Patient *p = r ? r->patient : NULL;
    snprintf(out, cap, "%s%s%s", p ? p->given_name : "", p && p->given_name[0] && p->family_name[0] ? " " : "",
             p ? p->family_name : "");
}

bool hx_referral_id_valid(const char *s)
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if (!s || strlen(s) != HX_REFERRAL_ID_LEN || s[0] != 'R' || s[1] != '-')
        return false;
    for (size_t i = 2; i < HX_REFERRAL_ID_LEN; i++)
        if (!strchr(alphabet, s[i]))
            return false;
    return true;
}

void hx_clinic_referral_id(const hx_clinic_t *c, const char *ref, char rid[HX_REFERRAL_ID_LEN + 1])
{
    uint8_t id[HX_ID_LEN];
    hx_submission_id(c->clinic, ref, id);
    hx_referral_id(id, rid);
}

bool hx_clinic_sent_before(hx_clinic_t *c, const char *referral_id)
{
    sqlite3_stmt *st;
    bool found = false;
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM sent WHERE referral_id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, referral_id, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    return found;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int cl_record_sent(hx_clinic_t *c, const char *rid, const Handoff__Referral *r, const char *source)
{
    sqlite3_stmt *st;
    char patient[160];
    hx_patient_name(r, patient, sizeof patient);
    size_t len = handoff__referral__get_packed_size(r);
    uint8_t *body = malloc(len ? len : 1);
    if (!body)
        return cl_fail(c, HX_ENOMEM, "recording %s as sent: out of memory", rid);
    handoff__referral__pack(r, body);
    if (sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO sent(referral_id, ref, file, at_ms, patient, body) "
                                  "VALUES (?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK) {
        free(body);
        return cl_fail(c, HX_EIO, "recording %s as sent: %s", rid, sqlite3_errmsg(c->db));
    }
    sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->ref, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)wall_ms());
    int rc;
    if (cl_bind_sealed(c, st, 3, source ? source : "", source ? strlen(source) : 0) != 0 ||
        cl_bind_sealed(c, st, 5, patient, strlen(patient)) != 0 || cl_bind_sealed(c, st, 6, body, len) != 0)
        rc = cl_fail(c, HX_ENOMEM, "recording %s as sent: out of memory", rid);
    else
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : cl_fail(c, HX_EIO, "recording %s as sent: %s", rid,
                                                           sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    free(body);
    return rc;
}

int hx_clinic_sent_referral(hx_clinic_t *c, const char *referral_id, Handoff__Referral **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT body FROM sent WHERE referral_id = ? AND body IS NOT NULL", -1, &st,
                           NULL) != SQLITE_OK)
        return cl_fail(c, HX_EIO, "reading the store: %s", sqlite3_errmsg(c->db));
    sqlite3_bind_text(st, 1, referral_id, -1, SQLITE_STATIC);
    int rc = 0;
    uint8_t *v;
    size_t n;
    if (sqlite3_step(st) == SQLITE_ROW && (rc = cl_column_open(c, st, 0, &v, &n)) == 0) {
        *out = handoff__referral__unpack(NULL, n, v);
        sodium_memzero(v, n);
        free(v);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Each sent row, or the one of referral_id (when not NULL). */
static int each_sent(hx_clinic_t *c, const char *referral_id,
                     void (*fn)(void *ud, const char *referral_id, const char *ref, const char *patient, uint64_t at_ms),
                     void *ud)
{
    sqlite3_stmt *st;
    const char *sql = referral_id ? "SELECT referral_id, ref, patient, at_ms FROM sent WHERE referral_id = ?1"
                                  : "SELECT referral_id, ref, patient, at_ms FROM sent ORDER BY at_ms, rowid";
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        return cl_fail(c, HX_EIO, "reading the store: %s", sqlite3_errmsg(c->db));
    if (referral_id)
        sqlite3_bind_text(st, 1, referral_id, -1, SQLITE_STATIC);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        uint8_t *patient;
        size_t n;
        if ((rc = cl_column_open(c, st, 2, &patient, &n)) != 0)
            break;
        fn(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
           (const char *)patient, (uint64_t)sqlite3_column_int64(st, 3));
        free(patient);
    }
    sqlite3_finalize(st);
    return rc;
}

int hx_clinic_each_sent(hx_clinic_t *c,
                        void (*fn)(void *ud, const char *referral_id, const char *ref, const char *patient,
                                   uint64_t at_ms),
                        void *ud)
{
    return each_sent(c, NULL, fn, ud);
}

int hx_clinic_sent_one(hx_clinic_t *c, const char *referral_id,
                       void (*fn)(void *ud, const char *referral_id, const char *ref, const char *patient,
                                  uint64_t at_ms),
                       void *ud)
{
    return referral_id ? each_sent(c, referral_id, fn, ud) : 0;
}

int hx_clinic_each_received(hx_clinic_t *c, const hx_clinic_query_t *q,
                            void (*fn)(void *ud, const char *type, const uint8_t *payload, size_t len,
                                       uint64_t at_ms),
                            void *ud)
{
    /* ?1 the type (NULL: handoffs and status updates), ?2 the referral: one referral's rows are
     * asked for with a plain referral_id = ?2, which the index received_referral serves (an
     * "?2 IS NULL OR" would make it a scan of the whole store) */
#define HX_RECEIVED_TYPE "(?1 IS NULL AND type IN ('handoff.Handoff', 'handoff.StatusUpdate') OR type = ?1) "
#define HX_RECEIVED_LATEST                                                                                          \
    "AND rowid = (SELECT rowid FROM received x WHERE x.type = r.type AND x.referral_id = r.referral_id "            \
    "ORDER BY at_ms DESC, rowid DESC LIMIT 1) "
    static const char *const sql[2][2] = {
        {"SELECT type, payload, at_ms FROM received r WHERE " HX_RECEIVED_TYPE "ORDER BY at_ms, rowid",
         "SELECT type, payload, at_ms FROM received r WHERE " HX_RECEIVED_TYPE HX_RECEIVED_LATEST
         "ORDER BY at_ms, rowid"},
        {"SELECT type, payload, at_ms FROM received r WHERE referral_id = ?2 AND " HX_RECEIVED_TYPE
         "ORDER BY at_ms, rowid",
         "SELECT type, payload, at_ms FROM received r WHERE referral_id = ?2 AND " HX_RECEIVED_TYPE HX_RECEIVED_LATEST
         "ORDER BY at_ms, rowid"},
    };
#undef HX_RECEIVED_TYPE
#undef HX_RECEIVED_LATEST
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, sql[q && q->referral_id][q && q->latest], -1, &st, NULL) != SQLITE_OK)
        return cl_fail(c, HX_EIO, "reading the store: %s", sqlite3_errmsg(c->db));
    if (q && q->type)
        sqlite3_bind_text(st, 1, q->type, -1, SQLITE_STATIC);
    if (q && q->referral_id)
        sqlite3_bind_text(st, 2, q->referral_id, -1, SQLITE_STATIC);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        uint8_t *payload;
        size_t n;
        if ((rc = cl_column_open(c, st, 1, &payload, &n)) != 0)
            break;
        fn(ud, (const char *)sqlite3_column_text(st, 0), payload, n, (uint64_t)sqlite3_column_int64(st, 2));
        sodium_memzero(payload, n);
        free(payload);
    }
    sqlite3_finalize(st);
    return rc;
}

int64_t hx_clinic_last_seq(hx_clinic_t *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT COALESCE(MAX(rowid), 0) FROM received", -1, &st, NULL) != SQLITE_OK) {
        cl_fail(c, HX_EIO, "reading the store: %s", sqlite3_errmsg(c->db));
        return -1;
    }
    int64_t seq = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        seq = (int64_t)sqlite3_column_int64(st, 0);
    else
        cl_fail(c, HX_EIO, "reading the store: %s", sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return seq;
}

int hx_clinic_each_received_after(hx_clinic_t *c, int64_t after, size_t limit,
                                  void (*fn)(void *ud, int64_t seq, const char *type, const char *referral_id,
                                             const uint8_t *payload, size_t len, uint64_t at_ms),
                                  void *ud)
{
    if (!fn)
        return cl_fail(c, HX_EINVAL, "reading the store: no function to call for each message");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT rowid, type, referral_id, payload, at_ms FROM received WHERE rowid > ? "
                           "ORDER BY rowid LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return cl_fail(c, HX_EIO, "reading the store: %s", sqlite3_errmsg(c->db));
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(after > 0 ? after : 0));
    /* SQLite reads a negative LIMIT as none */
    sqlite3_bind_int64(st, 2, limit == 0 || (uint64_t)limit > (uint64_t)INT64_MAX ? -1 : (sqlite3_int64)limit);
    int rc, opened = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 1);
        const char *rid = (const char *)sqlite3_column_text(st, 2);
        uint8_t *payload;
        size_t len;
        if ((opened = cl_column_open(c, st, 3, &payload, &len)) != 0)
            break;
        fn(ud, (int64_t)sqlite3_column_int64(st, 0), type ? type : "", rid ? rid : "", payload, len,
           (uint64_t)sqlite3_column_int64(st, 4));
        sodium_memzero(payload, len);
        free(payload);
    }
    int out = opened ? opened
                     : rc == SQLITE_DONE ? 0 : cl_fail(c, HX_EIO, "reading the store: %s", sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return out;
}
