/* hx_db_stmt — statements stepped row by row, as SQLite's own API, on either backend (see
 * hx_db.h). SQLite: a kept sqlite3_stmt. PostgreSQL: a statement prepared on the server once
 * per connection, its parameters kept as text (blobs as bytes), run at the first step, its
 * rows then read from the result (text format: integers parsed, booleans as 1 and 0, bytea
 * decoded on demand). */
#include "hx_db.h"
#include "hx_db_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PARAMS 32
#define BYTEA_OID 17

struct hx_db_stmt {
    hx_db_t *db;
    const char *sql;                /* the caller's text (a literal: its address is the key) */
    char *own;                      /* a copy of the text: what it was prepared from */
    bool cached, busy, once;        /* once: hx_db_prep_text's, for one use */
    bool borrowed;                  /* PostgreSQL: the server's statement is a kept one's */
    sqlite3_stmt *lite;
    /* PostgreSQL */
    char name[16];
    unsigned generation;            /* the connection it was prepared on */
    int n_params;
    char *vals[MAX_PARAMS];         /* owned copies; NULL: SQL NULL */
    int lens[MAX_PARAMS], fmts[MAX_PARAMS];
    PGresult *res;
    bool ran;
    int row, n_rows;
    int blob_col;                   /* the column decoded into blob (-1: none) */
    unsigned char *blob;
    size_t blob_len;
};

static unsigned slot_of(const char *sql)
{
    uintptr_t h = (uintptr_t)sql;
    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15u;
    return (unsigned)(h >> 7) & (STMT_CACHE - 1);
}

static void set_err(hx_db_t *db, const char *fmt, const char *a)
{
    snprintf(db->errmsg, sizeof db->errmsg, fmt, db->where, a);
}

static void params_clear(hx_db_stmt_t *st)
{
    for (int i = 0; i < MAX_PARAMS; i++) {
        free(st->vals[i]);
        st->vals[i] = NULL;
        st->lens[i] = st->fmts[i] = 0;
    }
}

static void result_clear(hx_db_stmt_t *st)
{
    PQclear(st->res);
    st->res = NULL;
    st->ran = false;
    st->row = -1;
    st->n_rows = 0;
    PQfreemem(st->blob);
    st->blob = NULL;
    st->blob_col = -1;
}

static void stmt_free(hx_db_stmt_t *st)
{
    if (!st)
        return;
    if (st->lite)
        sqlite3_finalize(st->lite);
    if (!st->cached && !st->borrowed && st->name[0] && st->db->pg && st->generation == st->db->generation &&
        PQstatus(st->db->pg) == CONNECTION_OK) {
        char drop[40];              /* not kept: not left on the server either */
        snprintf(drop, sizeof drop, "DEALLOCATE %s", st->name);
        PQclear(PQexec(st->db->pg, drop));
    }
    free(st->own);
    result_clear(st);
    params_clear(st);
    free(st);
}

/* PostgreSQL: prepared on this connection (again after a reconnect). 0 or -1. */
static int pg_prepare(hx_db_stmt_t *st)
{
    hx_db_t *db = st->db;
    if (st->name[0] && st->generation == db->generation)
        return 0;
    char *text = hx_db_pg_numbered(st->own, &st->n_params);
    if (!text) {
        set_err(db, "%s: %s", "out of memory");
        return -1;
    }
    if (st->n_params > MAX_PARAMS) {
        free(text);
        snprintf(db->errmsg, sizeof db->errmsg, "%s: %d parameters, more than %d", db->where, st->n_params,
                 MAX_PARAMS);
        return -1;
    }
    if (!st->name[0] || st->generation != db->generation)
        snprintf(st->name, sizeof st->name, "hs%u", ++db->next_name);
    PGresult *res = PQprepare(db->pg, st->name, text, 0, NULL);
    free(text);
    int rc = res && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc)
        hx_db_pg_error(db, res, "prepare", db->errmsg, sizeof db->errmsg);
    PQclear(res);
    if (rc == 0) {
        st->generation = db->generation;
        st->borrowed = false;       /* its own now (after a reconnect) */
    }
    return rc;
}

static hx_db_stmt_t *make(hx_db_t *db, const char *sql, bool once, const hx_db_stmt_t *like)
{
    hx_db_stmt_t *st = calloc(1, sizeof *st);
    char *own = strdup(sql);
    if (!st || !own) {
        free(st);
        free(own);
        set_err(db, "%s: %s", "out of memory");
        return NULL;
    }
    st->db = db;
    st->sql = sql;
    st->own = own;
    st->once = once;
    st->row = -1;
    st->blob_col = -1;
    int rc;
    if (db->kind == HX_DB_SQLITE) {
        rc = sqlite3_prepare_v2(db->lite, st->own, -1, &st->lite, NULL) == SQLITE_OK ? 0 : -1;
        if (rc)
            set_err(db, "%s: %s", sqlite3_errmsg(db->lite));
    } else if (like && like->name[0] && like->generation == db->generation) {
        /* the same text in use: its server statement serves both (each result is read whole) */
        memcpy(st->name, like->name, sizeof st->name);
        st->generation = like->generation;
        st->n_params = like->n_params;
        st->borrowed = true;
        rc = 0;
    } else {
        rc = 0;                     /* prepared at its first step, where a lost connection is made again */
    }
    if (rc) {
        stmt_free(st);
        return NULL;
    }
    st->busy = true;
    return st;
}

hx_db_stmt_t *hx_db_prep_text(hx_db_t *db, const char *sql)
{
    return make(db, sql, true, NULL);
}

hx_db_stmt_t *hx_db_prep(hx_db_t *db, const char *sql)
{
    unsigned i = slot_of(sql);
    bool room = db->n_stmts < STMT_CACHE * 3 / 4;
    const hx_db_stmt_t *busy = NULL;
    for (unsigned k = 0; k < STMT_CACHE; k++, i = (i + 1) & (STMT_CACHE - 1)) {
        hx_db_stmt_t *e = db->stmts[i];
        if (!e)
            break;                          /* not kept yet: made below, kept at i */
        if (e->sql == sql && strcmp(e->own, sql) == 0) {   /* (the text too: an address reused) */
            if (!e->busy) {
                e->busy = true;
                return e;
            }
            room = false;                   /* in use (a query inside its own loop): one of its own */
            busy = e;
            break;
        }
    }
    hx_db_stmt_t *st = make(db, sql, false, busy);
    if (!st)
        return NULL;
    if (room && !db->stmts[i]) {
        st->cached = true;
        db->stmts[i] = st;
        db->n_stmts++;
    }
    return st;
}

void hx_db_done(hx_db_stmt_t *st)
{
    if (!st)
        return;
    if (!st->cached) {
        stmt_free(st);
        return;
    }
    if (st->lite) {
        sqlite3_reset(st->lite);
        sqlite3_clear_bindings(st->lite);
    }
    result_clear(st);           /* (and ran) */
    params_clear(st);
    st->busy = false;
}

void hx_db_stmts_free(hx_db_t *db)
{
    for (size_t i = 0; i < STMT_CACHE; i++) {
        stmt_free(db->stmts[i]);
        db->stmts[i] = NULL;
    }
    db->n_stmts = 0;
}

/* ---- parameters (1-based, as SQLite's) ------------------------------------------------------ */

static int pg_param(hx_db_stmt_t *st, int idx, const void *v, size_t len, bool binary)
{
    if (idx < 1 || idx > MAX_PARAMS) {
        snprintf(st->db->errmsg, sizeof st->db->errmsg, "%s: parameter %d of at most %d", st->db->where, idx,
                 MAX_PARAMS);
        return -1;
    }
    if (st->ran)
        result_clear(st);           /* bound again after a run: as sqlite3_reset would */
    free(st->vals[idx - 1]);
    st->vals[idx - 1] = NULL;
    st->lens[idx - 1] = st->fmts[idx - 1] = 0;
    if (!v)
        return 0;
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, v, len);
    copy[len] = '\0';
    st->vals[idx - 1] = copy;
    st->lens[idx - 1] = (int)len;
    st->fmts[idx - 1] = binary;
    return 0;
}

int hx_db_bind_text(hx_db_stmt_t *st, int idx, const char *s)
{
    if (!s)
        return hx_db_bind_null(st, idx);
    if (st->lite)
        return sqlite3_bind_text(st->lite, idx, s, -1, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
    return pg_param(st, idx, s, strlen(s), false);
}

int hx_db_bind_textn(hx_db_stmt_t *st, int idx, const char *s, size_t len)
{
    if (st->lite)
        return sqlite3_bind_text(st->lite, idx, s, (int)len, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
    return pg_param(st, idx, s, strnlen(s, len), false);
}

int hx_db_bind_int(hx_db_stmt_t *st, int idx, int64_t v)
{
    if (st->lite)
        return sqlite3_bind_int64(st->lite, idx, v) == SQLITE_OK ? 0 : -1;
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRId64, v);
    return pg_param(st, idx, text, (size_t)n, false);
}

int hx_db_bind_blob(hx_db_stmt_t *st, int idx, const void *p, size_t len)
{
    if (st->lite)
        return sqlite3_bind_blob(st->lite, idx, len ? p : "", (int)len, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
    return pg_param(st, idx, len ? p : "", len, true);
}

int hx_db_bind_null(hx_db_stmt_t *st, int idx)
{
    if (st->lite)
        return sqlite3_bind_null(st->lite, idx) == SQLITE_OK ? 0 : -1;
    return pg_param(st, idx, NULL, 0, false);
}

void hx_db_reset(hx_db_stmt_t *st)
{
    if (st->lite) {
        sqlite3_reset(st->lite);
        st->ran = false;
    } else {
        result_clear(st);
    }
}

/* ---- running ------------------------------------------------------------------------------- */

/* A read: tried again on a new connection when the old one was found closed. */
static bool is_read(const char *sql)
{
    sql += strspn(sql, " \t\n(");
    return !strncasecmp(sql, "SELECT", 6);
}

static bool unique_state(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && !strcmp(state, "23505");
}

int hx_db_step(hx_db_stmt_t *st)
{
    hx_db_t *db = st->db;
    if (!st->ran)
        db->unique_violation = false;
    if (st->lite) {
        bool first = !st->ran;      /* the step that does the statement's work, timed */
        uint64_t t0 = first ? hx_db_now_ns() : 0;
        st->ran = true;
        int rc = sqlite3_step(st->lite);
        if (first)
            hx_db_observe(db, hx_db_now_ns() - t0, rc != SQLITE_ROW && rc != SQLITE_DONE);
        if (rc == SQLITE_ROW)
            return HX_DB_ROW;
        if (rc == SQLITE_DONE) {
            db->changes = sqlite3_changes64(db->lite);
            return HX_DB_DONE;
        }
        int ext = sqlite3_extended_errcode(db->lite);
        db->unique_violation = ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE;
        set_err(db, "%s: %s", sqlite3_errmsg(db->lite));
        return -1;
    }
    if (!st->ran) {
        /* outside a transaction a statement is the connection's first use: a lost one is
         * made again here (inside one, the transaction is lost with it: the caller's error) */
        bool own = !db->in_txn && PQtransactionStatus(db->pg) != PQTRANS_INTRANS &&
                   PQtransactionStatus(db->pg) != PQTRANS_INERROR;
        for (int attempt = 0;; attempt++) {
            if (own && hx_db_pg_usable(db, db->errmsg, sizeof db->errmsg) != 0)
                return -1;
            if (pg_prepare(st) != 0)
                return -1;
            st->ran = true;
            st->row = -1;
            uint64_t t0 = hx_db_now_ns();
            st->res = PQexecPrepared(db->pg, st->name, st->n_params, (const char *const *)st->vals, st->lens,
                                     st->fmts, 0);
            ExecStatusType s = st->res ? PQresultStatus(st->res) : PGRES_FATAL_ERROR;
            hx_db_observe(db, hx_db_now_ns() - t0, s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK);
            if (s == PGRES_COMMAND_OK) {
                db->changes = strtoll(PQcmdTuples(st->res), NULL, 10);
                st->n_rows = 0;
                break;
            }
            if (s == PGRES_TUPLES_OK) {
                st->n_rows = PQntuples(st->res);
                break;
            }
            db->unique_violation = unique_state(st->res);
            hx_db_pg_error(db, st->res, "statement", db->errmsg, sizeof db->errmsg);
            PQclear(st->res);
            st->res = NULL;
            if (!(own && attempt == 0 && PQstatus(db->pg) != CONNECTION_OK && is_read(st->own)))
                return -1;
            st->ran = false;
            db->retry_at_ms = 0;    /* a read that found the connection closed: once more, now */
        }
    }
    PQfreemem(st->blob);
    st->blob = NULL;
    st->blob_col = -1;
    if (st->row + 1 < st->n_rows) {
        st->row++;
        return HX_DB_ROW;
    }
    st->row = st->n_rows;
    return HX_DB_DONE;
}

/* ---- the current row's columns (0-based) ------------------------------------------------------ */

static bool pg_has(const hx_db_stmt_t *st, int col)
{
    return st->res && st->row >= 0 && st->row < st->n_rows && col >= 0 && col < PQnfields(st->res);
}

bool hx_db_col_null(hx_db_stmt_t *st, int col)
{
    if (st->lite)
        return sqlite3_column_type(st->lite, col) == SQLITE_NULL;
    return !pg_has(st, col) || PQgetisnull(st->res, st->row, col);
}

int64_t hx_db_col_int(hx_db_stmt_t *st, int col)
{
    if (st->lite)
        return sqlite3_column_int64(st->lite, col);
    if (hx_db_col_null(st, col))
        return 0;
    const char *v = PQgetvalue(st->res, st->row, col);
    if (v[0] == 't' && !v[1])
        return 1;                   /* a boolean expression */
    if (v[0] == 'f' && !v[1])
        return 0;
    return strtoll(v, NULL, 10);
}

double hx_db_col_double(hx_db_stmt_t *st, int col)
{
    if (st->lite)
        return sqlite3_column_double(st->lite, col);
    return hx_db_col_null(st, col) ? 0 : strtod(PQgetvalue(st->res, st->row, col), NULL);
}

const char *hx_db_col_text(hx_db_stmt_t *st, int col)
{
    if (st->lite) {
        const char *t = (const char *)sqlite3_column_text(st->lite, col);
        return t ? t : "";
    }
    return pg_has(st, col) ? PQgetvalue(st->res, st->row, col) : "";
}

/* PostgreSQL: a bytea column decoded (once per row and column). */
static int pg_blob(hx_db_stmt_t *st, int col)
{
    if (st->blob_col == col)
        return 0;
    PQfreemem(st->blob);
    st->blob = NULL;
    st->blob_col = -1;
    if (!pg_has(st, col) || PQgetisnull(st->res, st->row, col))
        return -1;
    if (PQftype(st->res, col) != BYTEA_OID)
        return -1;
    st->blob = PQunescapeBytea((const unsigned char *)PQgetvalue(st->res, st->row, col), &st->blob_len);
    if (!st->blob)
        return -1;
    st->blob_col = col;
    return 0;
}

const void *hx_db_col_blob(hx_db_stmt_t *st, int col)
{
    if (st->lite)
        return sqlite3_column_blob(st->lite, col);
    if (pg_has(st, col) && PQftype(st->res, col) != BYTEA_OID)
        return PQgetisnull(st->res, st->row, col) ? NULL : PQgetvalue(st->res, st->row, col);
    return pg_blob(st, col) == 0 ? st->blob : NULL;
}

size_t hx_db_col_bytes(hx_db_stmt_t *st, int col)
{
    if (st->lite)
        return (size_t)sqlite3_column_bytes(st->lite, col);
    if (pg_has(st, col) && PQftype(st->res, col) != BYTEA_OID)
        return (size_t)PQgetlength(st->res, st->row, col);
    return pg_blob(st, col) == 0 ? st->blob_len : 0;
}

int64_t hx_db_changes(const hx_db_t *db)
{
    return db->changes;
}

bool hx_db_unique_violation(const hx_db_t *db)
{
    return db->unique_violation;
}

const char *hx_db_errmsg(const hx_db_t *db)
{
    return db->errmsg[0] ? db->errmsg : "no error";
}
