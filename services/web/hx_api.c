/* hx_api — the FHIR API's clients, access tokens and subscriptions in the accounts store (see
 * hx_api.h). Secrets and tokens are known by a keyed BLAKE2b hash only; the throttle, the
 * expiry and the subscriptions' backoff all follow the store's clock. */
#include "hx_api.h"
#include "hx_accounts_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_FAILURES 5u                 /* failed secrets in a row before a client is held */
#define API_HOLD_MS (300u * 1000u)      /* for this long */
#define HASH_LEN 32
#define SCOPE_MAX 96                    /* one scope: "system/DocumentReference.cruds" and room */

/* ---- scopes ---------------------------------------------------------------------------------- */

/* The resource types a scope may name: hx_fhir.h's, in its order, and Subscription. */
static const char *const types[] = {"ServiceRequest", "Task", "Patient", "Practitioner", "PractitionerRole",
                                    "Organization", "Location", "Appointment", "Communication",
                                    "DocumentReference", "Binary", "Subscription"};
_Static_assert(sizeof types / sizeof *types == HX_FHIR_TYPE_COUNT + 1, "a scope type for each of hx_fhir.h's");
#define N_TYPES (sizeof types / sizeof *types)

static const char perm_letters[] = "cruds";
#define PERMS_ALL 0x1fu

typedef struct {
    int type;                           /* an index of types, or -1 for "*" */
    unsigned perms;                     /* bit i: perm_letters[i] */
} scope_t;

static unsigned perm_bit(char perm)
{
    const char *p = perm ? strchr(perm_letters, perm) : NULL;
    return p ? 1u << (p - perm_letters) : 0;
}

/* The permissions after the dot: v2 letters in order, or v1 read, write, *. 0 when bad. */
static unsigned perms_parse(const char *s, size_t len)
{
    if (len == 4 && !strncmp(s, "read", 4))
        return perm_bit('r') | perm_bit('s');
    if (len == 5 && !strncmp(s, "write", 5))
        return perm_bit('c') | perm_bit('u') | perm_bit('d');
    if (len == 1 && s[0] == '*')
        return PERMS_ALL;
    unsigned bits = 0;
    int last = -1;
    for (size_t i = 0; i < len; i++) {
        const char *p = s[i] ? strchr(perm_letters, s[i]) : NULL;
        if (!p || p - perm_letters <= last)
            return 0;               /* not a letter of cruds, repeated, or out of order */
        last = (int)(p - perm_letters);
        bits |= 1u << last;
    }
    return bits;
}

/* One scope s[0..len). 0 with *out, or -1 with why. */
static int scope_parse(const char *s, size_t len, scope_t *out, char *why, size_t cap)
{
    static const char prefix[] = "system/";
    const size_t pre = sizeof prefix - 1;
    int shown = len > SCOPE_MAX ? SCOPE_MAX : (int)len;
    if (len > SCOPE_MAX) {
        snprintf(why, cap, "scope '%.*s...': longer than %d characters", shown, s, SCOPE_MAX);
        return -1;
    }
    if (len <= pre || strncmp(s, prefix, pre)) {
        snprintf(why, cap, "scope '%.*s': not system/TYPE.PERMISSIONS (only system scopes are granted)", shown, s);
        return -1;
    }
    const char *type = s + pre, *dot = memchr(type, '.', len - pre);
    if (!dot) {
        snprintf(why, cap, "scope '%.*s': no '.' before the permissions", shown, s);
        return -1;
    }
    size_t tlen = (size_t)(dot - type), plen = len - pre - tlen - 1;
    out->type = -2;
    if (tlen == 1 && type[0] == '*')
        out->type = -1;
    for (size_t i = 0; i < N_TYPES && out->type == -2; i++)
        if (strlen(types[i]) == tlen && !strncmp(types[i], type, tlen))
            out->type = (int)i;
    if (out->type == -2) {
        snprintf(why, cap, "scope '%.*s': '%.*s' is not a resource type of this API", shown, s, (int)tlen, type);
        return -1;
    }
    if (!(out->perms = perms_parse(dot + 1, plen))) {
        snprintf(why, cap, "scope '%.*s': permissions '%.*s' are not read, write, * or letters of cruds in that "
                           "order, each once", shown, s, (int)plen, dot + 1);
        return -1;
    }
    return 0;
}

/* The next space-separated word of *p: its start and length (0 at the end). */
static const char *word_next(const char **p, size_t *len)
{
    *p += strspn(*p, " ");
    const char *w = *p;
    *len = strcspn(w, " ");
    *p += *len;
    return w;
}

int hx_api_scopes_check(const char *scopes, char *why, size_t cap)
{
    if (!scopes) {
        snprintf(why, cap, "scopes: none given");
        return -1;
    }
    if (strlen(scopes) >= HX_API_SCOPES_MAX) {
        snprintf(why, cap, "scopes: longer than %d characters", HX_API_SCOPES_MAX - 1);
        return -1;
    }
    scope_t sc;
    size_t len;
    for (const char *p = scopes, *w; (w = word_next(&p, &len)), len;)
        if (scope_parse(w, len, &sc, why, cap) != 0)
            return -1;
    return 0;
}

/* Whether the scopes of granted allow perm (bits) on type index t. */
static bool allows_bits(const char *granted, int t, unsigned perms)
{
    unsigned have = 0;
    scope_t sc;
    size_t len;
    char ignored[8];
    for (const char *p = granted ? granted : "", *w; (w = word_next(&p, &len)), len;)
        if (scope_parse(w, len, &sc, ignored, sizeof ignored) == 0 && (sc.type == -1 || sc.type == t))
            have |= sc.perms;
    return (have & perms) == perms;
}

static int type_index(const char *type)
{
    for (size_t i = 0; type && i < N_TYPES; i++)
        if (!strcmp(types[i], type))
            return (int)i;
    return -1;
}

bool hx_api_scope_allows(const char *granted, const char *type, char perm)
{
    int t = type_index(type);
    unsigned bit = perm_bit(perm);
    return t >= 0 && bit && allows_bits(granted, t, bit);
}

/* Whether every scope asked (well-formed) is allowed by the client's scopes: a wildcard one
 * when the client's allow what it says on every type. 0, or -1 with the first that is not. */
static int scopes_within(const char *asked, const char *client, char *why, size_t cap)
{
    scope_t sc;
    size_t len;
    for (const char *p = asked, *w; (w = word_next(&p, &len)), len;) {
        if (scope_parse(w, len, &sc, why, cap) != 0)
            return -1;
        bool ok = true;
        for (size_t t = 0; t < N_TYPES && ok; t++)
            if (sc.type == -1 || sc.type == (int)t)
                ok = allows_bits(client, (int)t, sc.perms);
        if (!ok) {
            snprintf(why, cap, "scope '%.*s': not one this client may have", (int)len, w);
            return -1;
        }
    }
    return 0;
}

/* scopes with one space between each, into out (cap >= strlen(scopes) + 1). */
static void scopes_tidy(const char *scopes, char *out, size_t cap)
{
    size_t n = 0, len;
    out[0] = '\0';
    for (const char *p = scopes, *w; (w = word_next(&p, &len)), len;) {
        int wr = snprintf(out + n, cap - n, "%s%.*s", n ? " " : "", (int)len, w);
        n += wr > 0 && (size_t)wr < cap - n ? (size_t)wr : 0;
    }
}

/* ---- clients ---------------------------------------------------------------------------------- */

static bool id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= HX_API_CLIENT_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* A clinic id as the portal hosts it: 1..31 of [A-Za-z0-9._-]. */
static bool clinic_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n < sizeof ((hx_api_client_t *)0)->clinic &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static void secret_hash(const hx_accounts_t *a, const char *s, uint8_t out[HASH_LEN])
{
    crypto_generichash(out, HASH_LEN, (const uint8_t *)s, strlen(s), hx_accounts_api_key(a),
                       crypto_generichash_KEYBYTES);
}

static void secret_new(char out[HX_TOKEN_LEN + 1])
{
    uint8_t raw[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, HX_TOKEN_LEN + 1, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

static void store_failed(hx_accounts_t *a, char *why, size_t cap)
{
    snprintf(why, cap, "the accounts store failed: %s", hx_accounts_error(a));
}

int hx_api_client_add(hx_accounts_t *a, const char *id, const char *clinic, const char *scopes,
                      char secret[HX_TOKEN_LEN + 1], char *why, size_t cap)
{
    secret[0] = '\0';
    if (!id_ok(id)) {
        snprintf(why, cap, "id: 1 to %d of a-z, 0-9, '.', '_', '-'", HX_API_CLIENT_MAX);
        return -1;
    }
    if (!clinic_ok(clinic)) {
        snprintf(why, cap, "clinic: 1 to 31 of A-Z, a-z, 0-9, '.', '_', '-'");
        return -1;
    }
    if (hx_api_scopes_check(scopes, why, cap) != 0)
        return -1;
    char tidy[HX_API_SCOPES_MAX];
    scopes_tidy(scopes, tidy, sizeof tidy);
    if (!tidy[0]) {
        snprintf(why, cap, "scopes: none given");
        return -1;
    }
    uint8_t h[HASH_LEN];
    secret_new(secret);
    secret_hash(a, secret, h);
    int rc = EXEC(a, "INSERT INTO api_clients(id, clinic, scopes, secret_hash, created_ms) VALUES (?, ?, ?, ?, ?)",
                  NULL, HX_DB_T(id), HX_DB_T(clinic), HX_DB_T(tidy), HX_DB_B(h, sizeof h),
                  HX_DB_I(hx_accounts_now_ms(a)));
    if (rc != 0) {
        if (hx_db_unique_violation(hx_accounts_db(a)))
            snprintf(why, cap, "id: taken");
        else
            store_failed(a, why, cap);
        sodium_memzero(secret, HX_TOKEN_LEN + 1);
    }
    return rc;
}

/* Changes client id with sql (?1 the id, ?2 the new secret's hash when given) and ends its
 * tokens; when off, its subscriptions are turned off too. All or nothing. */
static int client_change(hx_accounts_t *a, const char *id, const char *sql, const uint8_t *hash, bool off,
                         char *why, size_t cap)
{
    if (!id_ok(id)) {
        snprintf(why, cap, "id: no such client");
        return -1;
    }
    if (hx_accounts_begin(a) != 0) {
        store_failed(a, why, cap);
        return -1;
    }
    int64_t n = 0;
    int rc = hash ? EXEC(a, sql, &n, HX_DB_T(id), HX_DB_B(hash, HASH_LEN)) : EXEC(a, sql, &n, HX_DB_T(id));
    bool found = rc == 0 && n == 1;
    if (rc == 0 && found)
        rc = EXEC(a, "DELETE FROM api_tokens WHERE client = ?", NULL, HX_DB_T(id));
    if (rc == 0 && found && off)
        rc = EXEC(a, "UPDATE api_subs SET status = 'off' WHERE client = ?", NULL, HX_DB_T(id));
    if (rc == 0 && found)
        rc = hx_accounts_commit(a);
    if (rc != 0 || !found) {
        if (rc != 0)
            store_failed(a, why, cap);
        else
            snprintf(why, cap, "id: no such client");
        hx_accounts_rollback(a);
        return -1;
    }
    return 0;
}

int hx_api_client_reset(hx_accounts_t *a, const char *id, char secret[HX_TOKEN_LEN + 1], char *why, size_t cap)
{
    uint8_t h[HASH_LEN];
    secret_new(secret);
    secret_hash(a, secret, h);
    int rc = client_change(a, id,
                           "UPDATE api_clients SET secret_hash = ?2, disabled = 0, failures = 0, held_until_ms = 0 "
                           "WHERE id = ?1", h, false, why, cap);
    if (rc != 0)
        sodium_memzero(secret, HX_TOKEN_LEN + 1);
    return rc;
}

int hx_api_client_disable(hx_accounts_t *a, const char *id, char *why, size_t cap)
{
    return client_change(a, id, "UPDATE api_clients SET disabled = 1 WHERE id = ?1", NULL, true, why, cap);
}

int hx_api_client_each(hx_accounts_t *a, const char *clinic, void (*fn)(void *ud, const hx_api_client_t *c), void *ud)
{
    hx_db_stmt_t *st = PREP(a, "SELECT id, clinic, scopes, disabled, created_ms FROM api_clients "
                               "WHERE CAST(?1 AS TEXT) IS NULL OR clinic = ?1 ORDER BY clinic, id", HX_DB_T(clinic));
    int step = st ? HX_DB_ROW : -1;
    while (st && (step = hx_accounts_step(a, st)) == HX_DB_ROW) {
        hx_api_client_t c = {0};
        snprintf(c.id, sizeof c.id, "%s", hx_db_col_text(st, 0));
        snprintf(c.clinic, sizeof c.clinic, "%s", hx_db_col_text(st, 1));
        snprintf(c.scopes, sizeof c.scopes, "%s", hx_db_col_text(st, 2));
        c.disabled = hx_db_col_int(st, 3) != 0;
        c.created_ms = (uint64_t)hx_db_col_int(st, 4);
        fn(ud, &c);
    }
    hx_db_done(st);
    return step == HX_DB_DONE ? 0 : -1;
}

/* ---- tokens ----------------------------------------------------------------------------------- */

typedef struct {
    hx_api_client_t c;
    uint8_t hash[HASH_LEN];
    uint32_t failures;
    uint64_t held_until_ms;
} client_row_t;

/* 1 with the client's row, 0 when there is none, -1 on error. */
static int client_load(hx_accounts_t *a, const char *id, client_row_t *r)
{
    hx_db_stmt_t *st = PREP(a, "SELECT clinic, scopes, secret_hash, disabled, failures, held_until_ms, created_ms "
                               "FROM api_clients WHERE id = ?", HX_DB_T(id));
    int step = st ? hx_accounts_step(a, st) : -1, found = step == HX_DB_ROW ? 1 : step == HX_DB_DONE ? 0 : -1;
    if (found == 1) {
        memset(r, 0, sizeof *r);
        snprintf(r->c.id, sizeof r->c.id, "%s", id);
        snprintf(r->c.clinic, sizeof r->c.clinic, "%s", hx_db_col_text(st, 0));
        snprintf(r->c.scopes, sizeof r->c.scopes, "%s", hx_db_col_text(st, 1));
        if (hx_db_col_bytes(st, 2) == HASH_LEN)
            memcpy(r->hash, hx_db_col_blob(st, 2), HASH_LEN);
        else
            found = -1;
        r->c.disabled = hx_db_col_int(st, 3) != 0;
        r->failures = (uint32_t)hx_db_col_int(st, 4);
        r->held_until_ms = (uint64_t)hx_db_col_int(st, 5);
        r->c.created_ms = (uint64_t)hx_db_col_int(st, 6);
    }
    hx_db_done(st);
    return found;
}

/* A failed secret of client id: counted, and the client held once API_FAILURES are reached
 * (the count starts again after the hold). */
static void client_failure(hx_accounts_t *a, const char *id, uint64_t t)
{
    EXEC(a, "UPDATE api_clients SET failures = CASE WHEN failures + 1 >= ?1 THEN 0 ELSE failures + 1 END,"
            " held_until_ms = CASE WHEN failures + 1 >= ?1 THEN ?2 ELSE held_until_ms END WHERE id = ?3",
         NULL, HX_DB_I(API_FAILURES), HX_DB_I(t + API_HOLD_MS), HX_DB_T(id));
}

static void tokens_purge(hx_accounts_t *a, uint64_t t)
{
    EXEC(a, "DELETE FROM api_tokens WHERE expires_ms <= ?", NULL, HX_DB_I(t));
}

/* A new token of the client r with scopes, stored by its hash. 0, or -1. */
static int token_store(hx_accounts_t *a, const client_row_t *r, const char *scopes, uint64_t expires,
                       char token[HX_TOKEN_LEN + 1])
{
    uint8_t h[HASH_LEN];
    secret_new(token);
    secret_hash(a, token, h);
    int rc = EXEC(a, "INSERT INTO api_tokens(hash, client, clinic, scopes, expires_ms) VALUES (?, ?, ?, ?, ?)", NULL,
                  HX_DB_B(h, sizeof h), HX_DB_T(r->c.id), HX_DB_T(r->c.clinic), HX_DB_T(scopes), HX_DB_I(expires));
    if (rc != 0)
        sodium_memzero(token, HX_TOKEN_LEN + 1);
    return rc;
}

hx_api_token_rc_t hx_api_token(hx_accounts_t *a, const char *id, const char *secret, const char *scope,
                               char token[HX_TOKEN_LEN + 1], hx_api_client_t *grant, char *why, size_t cap)
{
    char none[8];
    if (!why)
        why = none, cap = sizeof none;
    token[0] = '\0';
    why[0] = '\0';
    if (grant)
        memset(grant, 0, sizeof *grant);
    uint64_t t = hx_accounts_now_ms(a);
    if (!id_ok(id) || !secret)
        return HX_API_TOKEN_REFUSED;
    tokens_purge(a, t);
    client_row_t r;
    int found = client_load(a, id, &r);
    if (found < 0)
        return HX_API_TOKEN_ERROR;
    if (found == 1 && r.held_until_ms > t)
        return HX_API_TOKEN_HELD;
    /* the hash is made and compared for an unknown client too: one answer, one time */
    uint8_t h[HASH_LEN], zero[HASH_LEN] = {0};
    secret_hash(a, secret, h);
    bool ok = sodium_memcmp(h, found == 1 ? r.hash : zero, HASH_LEN) == 0 && found == 1 && !r.c.disabled &&
              strlen(secret) == HX_TOKEN_LEN;
    if (!ok) {
        if (found == 1)
            client_failure(a, id, t);
        return HX_API_TOKEN_REFUSED;
    }
    if (EXEC(a, "UPDATE api_clients SET failures = 0, held_until_ms = 0 WHERE id = ?", NULL, HX_DB_T(id)) != 0)
        return HX_API_TOKEN_ERROR;
    char granted[HX_API_SCOPES_MAX] = "";
    if (scope && scope[0]) {
        if (strlen(scope) >= HX_API_SCOPES_MAX) {
            snprintf(why, cap, "scope: longer than %d characters", HX_API_SCOPES_MAX - 1);
            return HX_API_TOKEN_SCOPE;
        }
        if (scopes_within(scope, r.c.scopes, why, cap) != 0)
            return HX_API_TOKEN_SCOPE;
        scopes_tidy(scope, granted, sizeof granted);
    }
    if (!granted[0])                /* none asked: all the client may have */
        snprintf(granted, sizeof granted, "%s", r.c.scopes);
    if (token_store(a, &r, granted, t + HX_API_TOKEN_S * 1000ull, token) != 0)
        return HX_API_TOKEN_ERROR;
    if (grant) {
        *grant = r.c;
        snprintf(grant->scopes, sizeof grant->scopes, "%s", granted);
        grant->created_ms = t;
    }
    return HX_API_TOKEN_OK;
}

int hx_api_token_check(hx_accounts_t *a, const char *token, hx_api_client_t *grant)
{
    if (grant)
        memset(grant, 0, sizeof *grant);
    if (!token || strlen(token) != HX_TOKEN_LEN)
        return -1;
    uint64_t t = hx_accounts_now_ms(a);
    tokens_purge(a, t);
    uint8_t h[HASH_LEN];
    secret_hash(a, token, h);
    hx_db_stmt_t *st = PREP(a, "SELECT t.client, t.clinic, t.scopes, t.expires_ms FROM api_tokens t "
                               "JOIN api_clients c ON c.id = t.client AND c.clinic = t.clinic "
                               "WHERE t.hash = ? AND t.expires_ms > ? AND c.disabled = 0",
                            HX_DB_B(h, sizeof h), HX_DB_I(t));
    int rc = -1;
    if (st && hx_accounts_step(a, st) == HX_DB_ROW) {
        rc = 0;
        if (grant) {
            snprintf(grant->id, sizeof grant->id, "%s", hx_db_col_text(st, 0));
            snprintf(grant->clinic, sizeof grant->clinic, "%s", hx_db_col_text(st, 1));
            snprintf(grant->scopes, sizeof grant->scopes, "%s", hx_db_col_text(st, 2));
            grant->created_ms = (uint64_t)hx_db_col_int(st, 3) - HX_API_TOKEN_S * 1000ull;
        }
    }
    hx_db_done(st);
    return rc;
}

/* ---- subscriptions ---------------------------------------------------------------------------- */

/* Whether a fixed-size field holds a string that ends inside it. */
#define FIELD_OK(f) (memchr((f), '\0', sizeof(f)) != NULL)

static bool status_ok(const char *s)
{
    return !strcmp(s, "requested") || !strcmp(s, "active") || !strcmp(s, "error") || !strcmp(s, "off");
}

static bool endpoint_ok(const char *e)
{
    return (!strncmp(e, "https://", 8) && e[8]) || (!strncmp(e, "http://", 7) && e[7]);
}

/* What a client gave (sub): every field a string, a known topic, payload and status, an
 * http(s) endpoint, a header of one line. 0, or -1 with why. */
static int sub_fields_check(const hx_fhir_sub_t *s, char *why, size_t cap)
{
    if (!FIELD_OK(s->id) || !FIELD_OK(s->topic) || !FIELD_OK(s->endpoint) || !FIELD_OK(s->header) ||
        !FIELD_OK(s->status) || !FIELD_OK(s->reason) || !FIELD_OK(s->error)) {
        snprintf(why, cap, "subscription: a field is not a string");
        return -1;
    }
    if (strcmp(s->topic, HX_FHIR_TOPIC_TASK) && strcmp(s->topic, HX_FHIR_TOPIC_SERVICE_REQUEST)) {
        snprintf(why, cap, "topic: not %s or %s", HX_FHIR_TOPIC_TASK, HX_FHIR_TOPIC_SERVICE_REQUEST);
        return -1;
    }
    if (!endpoint_ok(s->endpoint)) {
        snprintf(why, cap, "endpoint: not an https:// or http:// address");
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)s->header; *p; p++)
        if (*p < ' ' || *p == 0x7f) {
            snprintf(why, cap, "header: not one line of text");
            return -1;
        }
    if (s->payload != HX_FHIR_PAYLOAD_ID_ONLY && s->payload != HX_FHIR_PAYLOAD_FULL &&
        s->payload != HX_FHIR_PAYLOAD_EMPTY) {
        snprintf(why, cap, "payload: not id-only, full-resource or empty");
        return -1;
    }
    if (!status_ok(s->status)) {
        snprintf(why, cap, "status: not requested, active, error or off");
        return -1;
    }
    return 0;
}

/* The columns read into a subscription, in load's order. */
#define SUB_COLUMNS                                                                                                \
    "id, client, clinic, topic, endpoint, header, payload, status, reason, end_ms, events, error, cursor, "      \
    "failures, next_ms, handshake_done"

static void text_col(hx_db_stmt_t *st, int i, char *out, size_t cap)
{
    snprintf(out, cap, "%s", hx_db_col_text(st, i));
}

static void sub_load(hx_db_stmt_t *st, hx_api_sub_t *s)
{
    memset(s, 0, sizeof *s);
    text_col(st, 0, s->sub.id, sizeof s->sub.id);
    text_col(st, 1, s->client, sizeof s->client);
    text_col(st, 2, s->clinic, sizeof s->clinic);
    text_col(st, 3, s->sub.topic, sizeof s->sub.topic);
    text_col(st, 4, s->sub.endpoint, sizeof s->sub.endpoint);
    text_col(st, 5, s->sub.header, sizeof s->sub.header);
    s->sub.payload = (hx_fhir_payload_t)hx_db_col_int(st, 6);
    text_col(st, 7, s->sub.status, sizeof s->sub.status);
    text_col(st, 8, s->sub.reason, sizeof s->sub.reason);
    s->sub.end_ms = (uint64_t)hx_db_col_int(st, 9);
    s->sub.events = (uint64_t)hx_db_col_int(st, 10);
    text_col(st, 11, s->sub.error, sizeof s->sub.error);
    s->cursor = hx_db_col_int(st, 12);
    s->failures = (uint32_t)hx_db_col_int(st, 13);
    s->next_ms = (uint64_t)hx_db_col_int(st, 14);
    s->handshake_done = hx_db_col_int(st, 15) != 0;
}

/* How many subscriptions clinic has, or -1. */
static int64_t subs_count(hx_accounts_t *a, const char *clinic)
{
    hx_db_stmt_t *st = PREP(a, "SELECT count(*) FROM api_subs WHERE clinic = ?", HX_DB_T(clinic));
    int64_t n = st && hx_accounts_step(a, st) == HX_DB_ROW ? hx_db_col_int(st, 0) : -1;
    hx_db_done(st);
    return n;
}

/* 0, or -1 (*taken: the id was drawn already). */
static int sub_insert(hx_accounts_t *a, const hx_api_sub_t *s, bool *taken)
{
    int rc = EXEC(a, "INSERT INTO api_subs(" SUB_COLUMNS ", created_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", NULL,
                  HX_DB_T(s->sub.id), HX_DB_T(s->client), HX_DB_T(s->clinic), HX_DB_T(s->sub.topic),
                  HX_DB_T(s->sub.endpoint), HX_DB_T(s->sub.header), HX_DB_I(s->sub.payload), HX_DB_T(s->sub.status),
                  HX_DB_T(s->sub.reason), HX_DB_I(s->sub.end_ms), HX_DB_I(s->sub.events), HX_DB_T(s->sub.error),
                  HX_DB_I(s->cursor), HX_DB_I(s->failures), HX_DB_I(s->next_ms), HX_DB_I(s->handshake_done ? 1 : 0),
                  HX_DB_I(hx_accounts_now_ms(a)));
    *taken = rc != 0 && hx_db_unique_violation(hx_accounts_db(a));
    return rc;
}

int hx_api_sub_add(hx_accounts_t *a, hx_api_sub_t *s, char *why, size_t cap)
{
    if (!FIELD_OK(s->client) || !id_ok(s->client)) {
        snprintf(why, cap, "client: not a client id");
        return -1;
    }
    if (!FIELD_OK(s->clinic) || !clinic_ok(s->clinic)) {
        snprintf(why, cap, "clinic: not a clinic id");
        return -1;
    }
    if (sub_fields_check(&s->sub, why, cap) != 0)
        return -1;
    if (hx_accounts_begin(a) != 0) {
        store_failed(a, why, cap);
        return -1;
    }
    int64_t n = subs_count(a, s->clinic);
    int rc = n < 0 ? -1 : 0;
    if (n >= HX_API_SUBS_MAX) {
        snprintf(why, cap, "subscription: this clinic has %d already, the most it may have", HX_API_SUBS_MAX);
        hx_accounts_rollback(a);
        return -1;
    }
    /* 64 random bits: an id taken already is drawn again (in a savepoint: on PostgreSQL a
     * failed statement would otherwise end the transaction) */
    for (int tries = 0; rc == 0 && tries < 4; tries++) {
        uint8_t raw[8];
        char hex[sizeof raw * 2 + 1];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
        snprintf(s->sub.id, sizeof s->sub.id, "S-%s", hex);
        bool taken = false;
        char err[8];
        if (hx_db_savepoint(hx_accounts_db(a), err, sizeof err) != 0)
            rc = -1;
        else if (sub_insert(a, s, &taken) == 0) {
            rc = hx_db_release(hx_accounts_db(a), err, sizeof err);
            break;
        } else
            rc = taken && tries < 3 && hx_db_rollback_to(hx_accounts_db(a), err, sizeof err) == 0 ? 0 : -1;
    }
    if (rc == 0)
        rc = hx_accounts_commit(a);
    if (rc != 0) {
        store_failed(a, why, cap);
        hx_accounts_rollback(a);
        s->sub.id[0] = '\0';
    }
    return rc;
}

int hx_api_sub_get(hx_accounts_t *a, const char *clinic, const char *id, hx_api_sub_t *out)
{
    hx_db_stmt_t *st = clinic && id ? PREP(a, "SELECT " SUB_COLUMNS " FROM api_subs WHERE clinic = ? AND id = ?",
                                           HX_DB_T(clinic), HX_DB_T(id)) : NULL;
    int rc = -1;
    if (st && hx_accounts_step(a, st) == HX_DB_ROW) {
        sub_load(st, out);
        rc = 0;
    }
    hx_db_done(st);
    return rc;
}

int hx_api_sub_update(hx_accounts_t *a, const char *clinic, const char *id, const hx_fhir_sub_t *s, char *why,
                      size_t cap)
{
    hx_api_sub_t old;
    if (hx_api_sub_get(a, clinic, id, &old) != 0) {
        snprintf(why, cap, "id: no such subscription");
        return -1;
    }
    if (sub_fields_check(s, why, cap) != 0)
        return -1;
    if (strcmp(s->topic, old.sub.topic)) {
        snprintf(why, cap, "topic: a subscription's topic does not change (make another one)");
        return -1;
    }
    /* the status the client may set: off, requested, or the one it has */
    bool again = !strcmp(s->status, "requested") && strcmp(old.sub.status, "requested");
    if (strcmp(s->status, "off") && strcmp(s->status, "requested") && strcmp(s->status, old.sub.status)) {
        snprintf(why, cap, "status: a client may set off or requested");
        return -1;
    }
    /* a new endpoint, or asked for again: a new handshake, the failures and the error forgotten */
    bool moved = strcmp(s->endpoint, old.sub.endpoint) != 0;
    const char *status = moved && strcmp(s->status, "off") ? "requested" : s->status;
    bool fresh = again || moved;
    int64_t n = 0;
    int rc = EXEC(a, "UPDATE api_subs SET endpoint = ?1, header = ?2, payload = ?3, end_ms = ?4, status = ?5,"
                     " reason = ?6, handshake_done = CASE WHEN ?7 = 1 THEN 0 ELSE handshake_done END,"
                     " failures = CASE WHEN ?7 = 1 THEN 0 ELSE failures END,"
                     " next_ms = CASE WHEN ?7 = 1 THEN 0 ELSE next_ms END,"
                     " error = CASE WHEN ?7 = 1 THEN '' ELSE error END WHERE clinic = ?8 AND id = ?9", &n,
                  HX_DB_T(s->endpoint), HX_DB_T(s->header), HX_DB_I(s->payload), HX_DB_I(s->end_ms),
                  HX_DB_T(status), HX_DB_T(s->reason), HX_DB_I(fresh ? 1 : 0), HX_DB_T(clinic), HX_DB_T(id));
    if (rc != 0 || n != 1) {
        store_failed(a, why, cap);
        return -1;
    }
    return 0;
}

int hx_api_sub_delete(hx_accounts_t *a, const char *clinic, const char *id)
{
    int64_t n = 0;
    if (!clinic || !id || EXEC(a, "DELETE FROM api_subs WHERE clinic = ? AND id = ?", &n, HX_DB_T(clinic),
                               HX_DB_T(id)) != 0)
        return -1;
    return n == 1 ? 0 : -1;
}

int hx_api_sub_each(hx_accounts_t *a, const char *clinic, void (*fn)(void *ud, const hx_api_sub_t *s), void *ud)
{
    hx_db_stmt_t *st = PREP(a, "SELECT " SUB_COLUMNS " FROM api_subs "
                               "WHERE CAST(?1 AS TEXT) IS NULL OR clinic = ?1 ORDER BY created_ms, rowid",
                            HX_DB_T(clinic));
    int step = st ? HX_DB_ROW : -1;
    while (st && (step = hx_accounts_step(a, st)) == HX_DB_ROW) {
        hx_api_sub_t s;
        sub_load(st, &s);
        fn(ud, &s);
    }
    hx_db_done(st);
    return step == HX_DB_DONE ? 0 : -1;
}

int hx_api_sub_progress(hx_accounts_t *a, const hx_api_sub_t *s)
{
    if (!FIELD_OK(s->clinic) || !FIELD_OK(s->sub.id) || !FIELD_OK(s->sub.status) || !FIELD_OK(s->sub.error) ||
        !status_ok(s->sub.status))
        return -1;
    int64_t n = 0;
    int rc = EXEC(a, "UPDATE api_subs SET cursor = ?1, events = ?2, status = ?3, failures = ?4, next_ms = ?5,"
                     " error = ?6, handshake_done = ?7 WHERE clinic = ?8 AND id = ?9", &n,
                  HX_DB_I(s->cursor), HX_DB_I(s->sub.events), HX_DB_T(s->sub.status), HX_DB_I(s->failures),
                  HX_DB_I(s->next_ms), HX_DB_T(s->sub.error), HX_DB_I(s->handshake_done ? 1 : 0),
                  HX_DB_T(s->clinic), HX_DB_T(s->sub.id));
    return rc == 0 && n == 1 ? 0 : -1;
}
