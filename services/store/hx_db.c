/* hx_db — see hx_db.h. */
#include "hx_db.h"
#include "hx_db_internal.h"
#include "hx_sqlite.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct hx_db_rows {
    hx_db_t *db;
    sqlite3_stmt *st;               /* SQLite */
    PGresult *res;                  /* PostgreSQL: every row at once */
    int row, n_rows;
    char err[720];
};

uint64_t hx_db_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void hx_db_observe(hx_db_t *db, uint64_t ns, bool failed)
{
    if (db->m_statement)
        hx_metric_observe(db->m_statement, ns);
    if (failed && db->m_errors)
        hx_metric_add(db->m_errors, 1);
}

static void set_connected(hx_db_t *db, bool up)
{
    if (db->m_connected)
        hx_metric_set(db->m_connected, up);
}

int hx_db_metrics(hx_db_t *db, hx_metrics_t *m)
{
    /* seconds, from 10 µs (SQLite's statements) to 10 s (a server that stalls) */
    static const uint64_t bounds[] = {10000,    25000,     50000,     100000,     250000,     500000,
                                      1000000,  2500000,   5000000,   10000000,   25000000,   50000000,
                                      100000000, 250000000, 500000000, 1000000000, 2500000000, 10000000000};
    const size_t nb = sizeof bounds / sizeof *bounds;
    const char *c = db->component;
    db->m_statement = hx_metrics_histogram(
        m, "handoff_store_statement_seconds",
        "Time of each statement the service ran on its store (PostgreSQL: the round trip to the server; SQLite: "
        "the statement's first step), by store.", "store", c, bounds, nb, 1e9);
    db->m_commit = hx_metrics_histogram(
        m, "handoff_store_commit_seconds",
        "Time of each commit (SQLite: its fsync; PostgreSQL: until the server's WAL flush), by store.", "store", c,
        bounds, nb, 1e9);
    db->m_transaction = hx_metrics_histogram(
        m, "handoff_store_transaction_seconds",
        "Time each transaction held the service's one connection, begin to commit or rollback, by store: "
        "rate(..._sum) is the share of time the connection is in use.", "store", c, bounds, nb, 1e9);
    db->m_connected = hx_metrics_gauge(
        m, "handoff_store_connected",
        "1 while the service's connection to its store is usable (SQLite: always), 0 while PostgreSQL cannot be "
        "reached.", "store", c);
    db->m_reconnects = hx_metrics_counter(
        m, "handoff_store_reconnects_total",
        "Connections to PostgreSQL made again after the first (a restart, a failover, a lost connection), by "
        "store.", "store", c);
    db->m_errors = hx_metrics_counter(m, "handoff_store_errors_total",
                                      "Statements the store refused or could not run, by store.", "store", c);
    if (!db->m_statement || !db->m_commit || !db->m_transaction || !db->m_connected || !db->m_reconnects ||
        !db->m_errors)
        return -1;
    hx_metric_set(db->m_connected, db->kind == HX_DB_SQLITE || PQstatus(db->pg) == CONNECTION_OK);
    return 0;
}

static uint64_t now_ms(void)
{
    return hx_db_now_ns() / 1000000;
}

/* ---- URLs -------------------------------------------------------------------------------------- */

int hx_db_url_parse(const char *url, hx_db_kind_t *kind, const char **rest, char *why, size_t cap)
{
    if (!url || !url[0]) {
        snprintf(why, cap, "empty: give sqlite:PATH (or a path) or postgresql://USER@HOST:PORT/DB");
        return -1;
    }
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        *kind = HX_DB_POSTGRES;
        *rest = url;
        return 0;
    }
    const char *path = strncmp(url, "sqlite://", 9) == 0 ? url + 9 : strncmp(url, "sqlite:", 7) == 0 ? url + 7 : NULL;
    if (!path && strstr(url, "://")) {
        snprintf(why, cap, "'%.*s': not a database this program can use: sqlite:PATH (or a path) or "
                 "postgresql://USER@HOST:PORT/DB", (int)(strstr(url, "://") - url + 3), url);
        return -1;
    }
    path = path ? path : url;
    if (!path[0]) {
        snprintf(why, cap, "'%s': no file after 'sqlite:'", url);
        return -1;
    }
    *kind = HX_DB_SQLITE;
    *rest = path;
    return 0;
}

void hx_db_url_display(const char *url, char *out, size_t cap)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    if (!opts) {
        snprintf(out, cap, "postgresql://(unreadable URL)");
        PQfreemem(err);
        return;
    }
    const char *user = "", *host = "", *port = "", *db = "";
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (!strcmp(o->keyword, "user"))
            user = o->val;
        else if (!strcmp(o->keyword, "host"))
            host = o->val;
        else if (!strcmp(o->keyword, "port"))
            port = o->val;
        else if (!strcmp(o->keyword, "dbname"))
            db = o->val;
    }
    snprintf(out, cap, "postgresql://%s%s%s%s%s/%s", user, user[0] ? "@" : "", host, port[0] ? ":" : "", port, db);
    PQconninfoFree(opts);
}

/* ---- PostgreSQL -------------------------------------------------------------------------------- */

static void pg_quiet(void *arg, const char *message)
{
    (void)arg, (void)message;       /* NOTICEs ("already exists, skipping"): not the log's business */
}

/* The server's last word, on one line. */
void hx_db_pg_error(hx_db_t *db, const PGresult *res, const char *what, char *err, size_t cap)
{
    const char *m = res ? PQresultErrorMessage(res) : "";
    if (!m || !m[0])
        m = PQerrorMessage(db->pg);
    snprintf(err, cap, "%s: %s: %.*s", db->where, what, (int)strcspn(m, "\n"), m);
}

/* Clears a secret so the compiler cannot leave it out. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

/* HANDOFF_DB_PASSWORD_FILE (when PGPASSWORD is not set): the password, its first line. 1 with
 * it in out, 0 when there is none to read, -1 with err when the file cannot be read. */
static int pg_password_file(char *out, size_t cap, char *err, size_t ecap)
{
    const char *path = getenv("HANDOFF_DB_PASSWORD_FILE");
    out[0] = '\0';
    if (!path || !path[0] || getenv("PGPASSWORD"))
        return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, ecap, "HANDOFF_DB_PASSWORD_FILE=%s: %s", path, strerror(errno));
        return -1;
    }
    bool got = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (!got || !out[0]) {
        snprintf(err, ecap, "HANDOFF_DB_PASSWORD_FILE=%s: empty (the password on its first line)", path);
        return -1;
    }
    return 1;
}

static int pg_connect(hx_db_t *db, char *err, size_t cap)
{
    if (db->pg)
        PQfinish(db->pg);
    /* a server that does not answer at all (its address gone in a failover) must not hold the
     * service's loop past the broker's liveness window: 2 s unless the URL says otherwise */
    char password[1025];
    int have = pg_password_file(password, sizeof password, err, cap);
    if (have < 0) {
        db->pg = NULL;
        set_connected(db, false);
        return -1;
    }
    /* the password before the URL: one the URL holds comes later and wins */
    const char *keys[4] = {"connect_timeout"}, *vals[4] = {"2"};
    size_t k = 1;
    if (have) {
        keys[k] = "password";
        vals[k++] = password;
    }
    keys[k] = "dbname";
    vals[k++] = db->url;
    keys[k] = vals[k] = NULL;
    db->pg = PQconnectdbParams(keys, vals, 1);
    wipe(password, sizeof password);
    if (db->connects++ && db->m_reconnects)
        hx_metric_add(db->m_reconnects, 1);
    db->n_cache = 0;                /* prepared statements live in a session */
    db->generation++;
    if (!db->pg || PQstatus(db->pg) != CONNECTION_OK) {
        const char *m = db->pg ? PQerrorMessage(db->pg) : "out of memory";
        snprintf(err, cap, "%s: cannot connect: %.*s", db->where, (int)strcspn(m, "\n"), m);
        set_connected(db, false);
        return -1;
    }
    set_connected(db, true);
    PQsetNoticeProcessor(db->pg, pg_quiet, NULL);
    /* each component in a schema of its own: intake's and scheduling's tables may share a
     * database without sharing names (both have a referrals table) */
    char sql[200];
    snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", db->schema);
    PGresult *res = NULL;
    for (int attempt = 0;; attempt++) {
        PQclear(res);
        res = PQexec(db->pg, sql);
        if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
            break;
        /* IF NOT EXISTS does not cover a twin creating it at the same moment: one of the two
         * fails on the catalog's unique index (23505) or as a duplicate schema (42P06). Then
         * it exists, which is all that was asked; the next try sees it. */
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (attempt < 3 && state && (!strcmp(state, "23505") || !strcmp(state, "42P06")))
            continue;
        hx_db_pg_error(db, res, "schema", err, cap);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    snprintf(sql, sizeof sql, "SET search_path TO %s", db->schema);
    res = PQexec(db->pg, sql);
    int rc = res && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc)
        hx_db_pg_error(db, res, "schema", err, cap);
    PQclear(res);
    return rc;
}

/* `?` -> $1, $2, …, `?NNN` -> $NNN, outside quotes. */
char *hx_db_pg_numbered(const char *sql, int *n_params)
{
    size_t n = strlen(sql), q = 0;
    for (const char *p = sql; *p; p++)
        q += *p == '?';
    char *out = malloc(n + q * 5 + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    long top = 0;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            quote = *p == quote ? 0 : quote;
            out[k++] = *p;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            out[k++] = *p;
        } else if (*p == '?') {
            char *end;
            long at = strtol(p + 1, &end, 10);
            if (end == p + 1 || at < 1 || at > 999)
                at = top + 1;       /* a bare `?`: one more than the largest so far */
            else
                p = end - 1;
            top = at > top ? at : top;
            k += (size_t)sprintf(out + k, "$%ld", at);
        } else {
            out[k++] = *p;
        }
    }
    out[k] = '\0';
    if (n_params)
        *n_params = (int)top;
    return out;
}

static cached_t *cache_find(hx_db_t *db, const char *sql)
{
    for (size_t i = 0; i < db->n_cache; i++)
        if (db->cache[i].sql == sql)
            return &db->cache[i];
    return NULL;
}

static PGresult *pg_run(hx_db_t *db, const char *sql, const hx_db_val_t *args, size_t n, char *err, size_t cap)
{
    enum { MAX_ARGS = 32 };
    if (n > MAX_ARGS) {
        snprintf(err, cap, "%s: %zu arguments, more than %d", db->where, n, MAX_ARGS);
        return NULL;
    }
    cached_t *c = cache_find(db, sql);
    char name[16];
    if (!c) {
        char *text = hx_db_pg_numbered(sql, NULL);
        snprintf(name, sizeof name, "hx%u", ++db->next_name);
        PGresult *res = text ? PQprepare(db->pg, name, text, 0, NULL) : NULL;
        free(text);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            hx_db_pg_error(db, res, "prepare", err, cap);
            PQclear(res);
            return NULL;
        }
        PQclear(res);
        if (db->n_cache < CACHE) {
            c = &db->cache[db->n_cache++];
            c->sql = sql;
            memcpy(c->name, name, sizeof name);
        }
    }
    const char *values[MAX_ARGS];
    int lengths[MAX_ARGS], formats[MAX_ARGS];
    char ints[MAX_ARGS][24];
    for (size_t i = 0; i < n; i++) {
        lengths[i] = 0;
        formats[i] = 0;
        switch (args[i].type) {
        case HX_DB_NULL: values[i] = NULL; break;
        case HX_DB_TEXT: values[i] = args[i].text; break;
        case HX_DB_INT:
            snprintf(ints[i], sizeof ints[i], "%" PRId64, args[i].i);
            values[i] = ints[i];
            break;
        case HX_DB_BLOB:
            values[i] = args[i].blob;
            lengths[i] = (int)args[i].len;
            formats[i] = 1;
            break;
        }
    }
    PGresult *res = PQexecPrepared(db->pg, c ? c->name : name, (int)n, values, lengths, formats, 0);
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        hx_db_pg_error(db, res, "statement", err, cap);
        PQclear(res);
        res = NULL;
    }
    if (!c) {                       /* not kept: let it go */
        char drop[48];
        snprintf(drop, sizeof drop, "DEALLOCATE %s", name);
        PQclear(PQexec(db->pg, drop));
    }
    return res;
}

/* ---- SQLite ------------------------------------------------------------------------------------ */

static sqlite3_stmt *lite_prep(hx_db_t *db, const char *sql, const hx_db_val_t *args, size_t n, char *err,
                               size_t cap)
{
    cached_t *c = cache_find(db, sql);
    sqlite3_stmt *st = c ? c->st : NULL;
    if (!st) {
        if (sqlite3_prepare_v2(db->lite, sql, -1, &st, NULL) != SQLITE_OK) {
            snprintf(err, cap, "%s: %s", db->where, sqlite3_errmsg(db->lite));
            sqlite3_finalize(st);
            return NULL;
        }
        if (db->n_cache < CACHE)
            db->cache[db->n_cache++] = (cached_t){.sql = sql, .st = st};
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; i < n; i++) {
        int rc = args[i].type == HX_DB_TEXT  ? sqlite3_bind_text(st, (int)i + 1, args[i].text, -1, SQLITE_STATIC)
                 : args[i].type == HX_DB_INT ? sqlite3_bind_int64(st, (int)i + 1, args[i].i)
                 : args[i].type == HX_DB_BLOB
                     ? sqlite3_bind_blob(st, (int)i + 1, args[i].blob, (int)args[i].len, SQLITE_STATIC)
                     : sqlite3_bind_null(st, (int)i + 1);
        if (rc != SQLITE_OK) {
            snprintf(err, cap, "%s: argument %zu: %s", db->where, i + 1, sqlite3_errmsg(db->lite));
            return NULL;
        }
    }
    return st;
}

/* A statement not kept in the cache is finalized when done. */
static void lite_done(hx_db_t *db, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < db->n_cache; i++)
        if (db->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

/* ---- both --------------------------------------------------------------------------------------- */

/* Runs a script of statements without arguments (schema steps). */
static int script(hx_db_t *db, const char *sql, char *err, size_t cap)
{
    if (db->kind == HX_DB_SQLITE) {
        char *e = NULL;
        if (sqlite3_exec(db->lite, sql, NULL, NULL, &e) == SQLITE_OK)
            return 0;
        snprintf(err, cap, "%s: %s", db->where, e ? e : sqlite3_errmsg(db->lite));
        sqlite3_free(e);
        return -1;
    }
    PGresult *res = PQexec(db->pg, sql);
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : -1;
    if (rc) {
        char what[48];              /* the statement's opening words name it */
        snprintf(what, sizeof what, "%.*s", (int)strcspn(sql, "(\n"), sql);
        hx_db_pg_error(db, res, what, err, cap);
    }
    PQclear(res);
    return rc;
}

static int exec_timed(hx_db_t *db, const char *sql, const hx_db_val_t *args, size_t n, int64_t *changes, char *err,
                      size_t cap);

int hx_db_exec(hx_db_t *db, const char *sql, const hx_db_val_t *args, size_t n, int64_t *changes, char *err,
               size_t cap)
{
    uint64_t t0 = hx_db_now_ns();
    int rc = exec_timed(db, sql, args, n, changes, err, cap);
    hx_db_observe(db, hx_db_now_ns() - t0, rc != 0);
    return rc;
}

static int exec_timed(hx_db_t *db, const char *sql, const hx_db_val_t *args, size_t n, int64_t *changes, char *err,
                      size_t cap)
{
    if (db->kind == HX_DB_SQLITE) {
        sqlite3_stmt *st = lite_prep(db, sql, args, n, err, cap);
        if (!st)
            return -1;
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW)
            ;
        int rc = step == SQLITE_DONE ? 0 : -1;
        if (rc)
            snprintf(err, cap, "%s: %s", db->where, sqlite3_errmsg(db->lite));
        else if (changes)
            *changes = sqlite3_changes64(db->lite);
        lite_done(db, st);
        return rc;
    }
    PGresult *res = pg_run(db, sql, args, n, err, cap);
    if (!res)
        return -1;
    if (changes)
        *changes = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

hx_db_rows_t *hx_db_query(hx_db_t *db, const char *sql, const hx_db_val_t *args, size_t n, char *err, size_t cap)
{
    hx_db_rows_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    r->db = db;
    r->row = -1;
    if (db->kind == HX_DB_SQLITE)
        r->st = lite_prep(db, sql, args, n, err, cap);
    else if ((r->res = pg_run(db, sql, args, n, err, cap)))
        r->n_rows = PQntuples(r->res);
    if (!r->st && !r->res) {
        free(r);
        return NULL;
    }
    return r;
}

int hx_db_next(hx_db_rows_t *r)
{
    if (r->res)
        return ++r->row < r->n_rows ? 1 : 0;
    int step = sqlite3_step(r->st);
    if (step == SQLITE_ROW)
        return 1;
    if (step == SQLITE_DONE)
        return 0;
    snprintf(r->err, sizeof r->err, "%.300s: %.400s", r->db->where, sqlite3_errmsg(r->db->lite));
    return -1;
}

bool hx_db_is_null(hx_db_rows_t *r, int col)
{
    return r->res ? PQgetisnull(r->res, r->row, col) != 0 : sqlite3_column_type(r->st, col) == SQLITE_NULL;
}

const char *hx_db_text(hx_db_rows_t *r, int col)
{
    const char *t = r->res ? PQgetvalue(r->res, r->row, col) : (const char *)sqlite3_column_text(r->st, col);
    return t ? t : "";
}

int64_t hx_db_int(hx_db_rows_t *r, int col)
{
    if (r->res)
        return PQgetisnull(r->res, r->row, col) ? 0 : strtoll(PQgetvalue(r->res, r->row, col), NULL, 10);
    return sqlite3_column_int64(r->st, col);
}

const char *hx_db_rows_error(const hx_db_rows_t *r)
{
    return r->err;
}

void hx_db_rows_free(hx_db_rows_t **self_p)
{
    hx_db_rows_t *r = self_p ? *self_p : NULL;
    if (!r)
        return;
    if (r->res)
        PQclear(r->res);
    else
        lite_done(r->db, r->st);
    free(r);
    *self_p = NULL;
}

int hx_db_begin(hx_db_t *db, char *err, size_t cap)
{
    db->txn_start_ns = hx_db_now_ns();
    if (db->kind == HX_DB_SQLITE) {
        if (script(db, "BEGIN IMMEDIATE", err, cap) != 0)
            return -1;
        db->in_txn = true;
        return 0;
    }
    /* a connection the server closed (a restart, a failover) shows only when used: BEGIN is
     * the first use of a transaction, so it is tried once on a fresh connection */
    for (int attempt = 0; attempt < 2; attempt++) {
        int up = hx_db_pg_usable(db, err, cap);
        if (up != 0)
            return up;
        PGresult *res = PQexec(db->pg, "BEGIN");
        bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            hx_db_pg_error(db, res, "begin", err, cap);
        PQclear(res);
        if (ok) {
            db->in_txn = true;
            return 0;
        }
        if (PQstatus(db->pg) == CONNECTION_OK)
            return -1;              /* the server answered: an ordinary error */
    }
    set_connected(db, false);
    return HX_DB_UNAVAILABLE;
}

int hx_db_pg_usable(hx_db_t *db, char *err, size_t cap)
{
    if (PQstatus(db->pg) == CONNECTION_OK)
        return 0;
    uint64_t now = now_ms();
    if (now < db->retry_at_ms) {
        snprintf(err, cap, "%s: not reachable; trying again in %" PRIu64 " ms", db->where, db->retry_at_ms - now);
        return HX_DB_UNAVAILABLE;
    }
    if (pg_connect(db, err, cap) != 0) {
        db->backoff_ms = db->backoff_ms ? db->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (db->backoff_ms > BACKOFF_MAX_MS)
            db->backoff_ms = BACKOFF_MAX_MS;
        db->retry_at_ms = now_ms() + db->backoff_ms;
        return HX_DB_UNAVAILABLE;
    }
    db->backoff_ms = 0;
    return 0;
}

/* The transaction begun at txn_start_ns is over. */
static void txn_over(hx_db_t *db)
{
    if (db->m_transaction && db->txn_start_ns)
        hx_metric_observe(db->m_transaction, hx_db_now_ns() - db->txn_start_ns);
    db->txn_start_ns = 0;
}

int hx_db_ping(hx_db_t *db, char *err, size_t cap)
{
    if (db->kind == HX_DB_SQLITE)
        return 0;
    int rc = -1;
    /* a connection the server closed shows only when used: then once more on a new one */
    for (int attempt = 0; attempt < 2 && rc != 0; attempt++) {
        if (PQstatus(db->pg) != CONNECTION_OK && pg_connect(db, err, cap) != 0)
            return -1;
        PGresult *res = PQexec(db->pg, "SELECT 1");
        rc = res && PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
        if (rc)
            hx_db_pg_error(db, res, "ping", err, cap);
        PQclear(res);
        if (rc && PQstatus(db->pg) == CONNECTION_OK)
            break;                  /* the server answered: not a lost connection */
    }
    if (rc == 0) {
        db->backoff_ms = 0;
        db->retry_at_ms = 0;
    }
    return rc;
}

int hx_db_commit(hx_db_t *db, char *err, size_t cap)
{
    int rc;
    uint64_t t0 = hx_db_now_ns();
    if (db->kind == HX_DB_SQLITE) {
        rc = script(db, "COMMIT", err, cap);
    } else {
        /* PostgreSQL answers COMMIT of a transaction an error aborted with success and the tag
         * ROLLBACK: nothing of it was kept, and the caller must hear so */
        PGresult *res = PQexec(db->pg, "COMMIT");
        rc = res && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc)
            hx_db_pg_error(db, res, "commit", err, cap);
        else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
            snprintf(err, cap, "%s: commit: the transaction was rolled back: a statement in it had failed",
                     db->where);
            rc = -1;
        }
        PQclear(res);
    }
    if (rc == 0 && db->m_commit)
        hx_metric_observe(db->m_commit, hx_db_now_ns() - t0);
    if (rc != 0)
        hx_db_rollback(db);
    txn_over(db);
    db->in_txn = false;
    return rc;
}

/* One savepoint at a time (a message inside a burst's transaction): enough for every caller,
 * and a fixed name keeps the statements prepared. */
int hx_db_savepoint(hx_db_t *db, char *err, size_t cap)
{
    return script(db, "SAVEPOINT hx_one", err, cap);
}

int hx_db_release(hx_db_t *db, char *err, size_t cap)
{
    return script(db, "RELEASE SAVEPOINT hx_one", err, cap);
}

int hx_db_rollback_to(hx_db_t *db, char *err, size_t cap)
{
    /* SQLite's ROLLBACK TO keeps the savepoint; PostgreSQL's too: both released after */
    int rc = script(db, "ROLLBACK TO SAVEPOINT hx_one", err, cap);
    return rc ? rc : script(db, "RELEASE SAVEPOINT hx_one", err, cap);
}

void hx_db_rollback(hx_db_t *db)
{
    char err[64];
    if (db->kind == HX_DB_SQLITE ? !sqlite3_get_autocommit(db->lite) : PQstatus(db->pg) == CONNECTION_OK)
        script(db, "ROLLBACK", err, sizeof err);
    txn_over(db);
    db->in_txn = false;
}

int hx_db_run(hx_db_t *db, const char *sql)
{
    return script(db, sql, db->errmsg, sizeof db->errmsg);
}

bool hx_db_in_transaction(const hx_db_t *db)
{
    if (db->kind == HX_DB_SQLITE)
        return !sqlite3_get_autocommit(db->lite);
    PGTransactionStatusType t = PQtransactionStatus(db->pg);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

hx_db_kind_t hx_db_kind(const hx_db_t *db)
{
    return db->kind;
}

const char *hx_db_where(const hx_db_t *db)
{
    return db->where;
}

int hx_db_found_version(const hx_db_t *db)
{
    return db->found_version;
}

/* ---- open and the schema ------------------------------------------------------------------------- */

static const char version_table[] =
    "CREATE TABLE IF NOT EXISTS handoff_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)";
static const char version_get[] = "SELECT version FROM handoff_schema WHERE component = ?";
static const char version_set[] = "INSERT INTO handoff_schema(component, version) VALUES (?, ?) "
                                  "ON CONFLICT (component) DO UPDATE SET version = excluded.version";
static const char pg_lock[] = "SELECT pg_advisory_xact_lock(hashtext(?))";

/* The component's version, read inside the current transaction. */
static int version_read(hx_db_t *db, const char *component, int *v, char *err, size_t cap)
{
    hx_db_val_t a[] = {HX_DB_T(component)};
    hx_db_rows_t *r = hx_db_query(db, version_get, a, 1, err, cap);
    if (!r)
        return -1;
    int step = hx_db_next(r);
    *v = step == 1 ? (int)hx_db_int(r, 0) : 0;
    if (step < 0)
        snprintf(err, cap, "%s", hx_db_rows_error(r));
    hx_db_rows_free(&r);
    return step < 0 ? -1 : 0;
}

/* Each step not applied yet, in its own transaction, under a lock (two workers starting
 * together: the second finds the first's work done). */
int hx_db_migrate(hx_db_t *db, const char *component, const hx_db_step_t *steps, size_t n_steps, char *err,
                  size_t cap)
{
    for (bool first = true;; first = false) {
        int v = 0;
        if (hx_db_begin(db, err, cap) != 0)
            return -1;
        hx_db_val_t lock[] = {HX_DB_T(component)};
        int rc = db->kind == HX_DB_POSTGRES ? hx_db_exec(db, pg_lock, lock, 1, NULL, err, cap) : 0;
        if (rc == 0)
            rc = script(db, version_table, err, cap);
        if (rc == 0)
            rc = version_read(db, component, &v, err, cap);
        if (rc == 0 && first)
            db->found_version = v;
        if (rc == 0 && v > (int)n_steps) {
            snprintf(err, cap, "%s: the %s schema is at version %d, newer than this program's %zu: run the version "
                     "of handoff that wrote it, or restore a backup of version %zu or older", db->where, component, v,
                     n_steps, n_steps);
            rc = -1;
        }
        if (rc == 0 && v == (int)n_steps) {
            hx_db_rollback(db);     /* nothing to do */
            return 0;
        }
        const hx_db_step_t *s = rc == 0 ? &steps[v] : NULL;
        if (rc == 0)
            rc = script(db, db->kind == HX_DB_SQLITE ? s->sqlite : s->postgres, err, cap);
        hx_db_val_t set[] = {HX_DB_T(component), HX_DB_I(v + 1)};
        if (rc == 0)
            rc = hx_db_exec(db, version_set, set, 2, NULL, err, cap);
        if (rc == 0)
            rc = hx_db_commit(db, err, cap);
        else
            hx_db_rollback(db);
        if (rc != 0) {
            if (v < (int)n_steps && !strstr(err, "newer than"))
                snprintf(err + strlen(err), cap - strlen(err), " (the %s schema, step %d)", component, v + 1);
            return -1;
        }
    }
}

hx_db_t *hx_db_open(const char *url, const char *component, const hx_db_step_t *steps, size_t n_steps, char *err,
                    size_t cap)
{
    hx_db_kind_t kind;
    const char *rest;
    if (hx_db_url_parse(url, &kind, &rest, err, cap) != 0)
        return NULL;
    hx_db_t *db = calloc(1, sizeof *db);
    if (!db) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    db->kind = kind;
    snprintf(db->component, sizeof db->component, "%s", component);
    int rc;
    if (kind == HX_DB_SQLITE) {
        snprintf(db->where, sizeof db->where, "%s", rest);
        mode_t old = umask(077);    /* referrals' metadata: the owner's only */
        rc = sqlite3_open(rest, &db->lite) == SQLITE_OK ? 0 : -1;
        umask(old);
        if (rc == 0 && hx_sqlite_wal(db->lite, 10000) != SQLITE_OK)
            rc = -1;
        if (rc != 0)
            snprintf(err, cap, "%s: %s", rest, db->lite ? sqlite3_errmsg(db->lite) : "out of memory");
        else {
            sqlite3_busy_timeout(db->lite, 10000);
            rc = script(db, "PRAGMA synchronous=FULL", err, cap);
        }
    } else {
        hx_db_url_display(rest, db->where, sizeof db->where);
        /* the schema's name: the component's, letters, digits and _ only (it is not quoted) */
        size_t k = 0;
        for (const char *c = component; *c && k + 1 < sizeof db->schema; c++)
            db->schema[k++] = (char)((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ? *c : '_');
        db->schema[k] = '\0';
        db->url = strdup(rest);
        rc = db->url ? pg_connect(db, err, cap) : -1;
    }
    if (rc == 0)
        rc = steps ? hx_db_migrate(db, component, steps, n_steps, err, cap) : 0;
    if (rc != 0) {
        hx_db_close(&db);
        return NULL;
    }
    return db;
}

void hx_db_close(hx_db_t **self_p)
{
    hx_db_t *db = self_p ? *self_p : NULL;
    if (!db)
        return;
    hx_db_stmts_free(db);
    if (db->lite) {
        for (size_t i = 0; i < db->n_cache; i++)
            sqlite3_finalize(db->cache[i].st);
        sqlite3_close(db->lite);
    }
    if (db->pg)
        PQfinish(db->pg);
    free(db->url);
    free(db);
    *self_p = NULL;
}
