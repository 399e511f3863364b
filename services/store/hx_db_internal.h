/* hx_db's insides, shared by its two files (hx_db.c: connections, schema, one-shot
 * statements; hx_db_stmt.c: statements stepped row by row). */
#ifndef HX_DB_INTERNAL_H
#define HX_DB_INTERNAL_H
#include "hx_db.h"
#include "hx_metrics.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define STMT_CACHE 512              /* hx_db_prep's statements kept (a power of two; 3/4 used at most) */
#define CACHE 128                   /* statements kept per connection, by their text's address */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct {
    const char *sql;                /* the caller's text (its address is the key) */
    sqlite3_stmt *st;               /* SQLite */
    char name[16];                  /* PostgreSQL: the prepared statement's name */
} cached_t;

struct hx_db {
    hx_db_kind_t kind;
    char where[600];
    int found_version;
    bool in_txn;
    cached_t cache[CACHE];
    size_t n_cache;
    unsigned next_name;
    sqlite3 *lite;
    PGconn *pg;
    char *url;                      /* PostgreSQL: to connect again */
    char schema[64];                /* PostgreSQL: the component's own schema (search_path) */
    uint64_t retry_at_ms;           /* PostgreSQL unreachable: not before then */
    uint32_t backoff_ms;
    unsigned generation;            /* PostgreSQL: connections made (prepared statements die with one) */
    char errmsg[720];               /* the last statement's error (hx_db_errmsg) */
    int64_t changes;                /* rows the last finished statement wrote */
    bool unique_violation;          /* the last statement failed on a unique or primary key */
    hx_db_stmt_t *stmts[STMT_CACHE];   /* hx_db_prep's, by their text's address */
    size_t n_stmts;
    char component[32];
    /* hx_db_metrics: NULL until then */
    hx_metric_t *m_statement, *m_commit, *m_transaction, *m_connected, *m_reconnects, *m_errors;
    uint64_t txn_start_ns;
    unsigned connects;
};

/* Monotonic nanoseconds (the metrics' clock). */
uint64_t hx_db_now_ns(void);
/* A statement's round trip (or SQLite's first step) took ns; failed: it failed. */
void hx_db_observe(hx_db_t *db, uint64_t ns, bool failed);

/* `?` and `?NNN` (SQLite's numbering: a bare `?` is one more than the largest so far) as
 * PostgreSQL's $N, outside quotes; *n_params the largest. malloc'd, NULL when out of memory. */
char *hx_db_pg_numbered(const char *sql, int *n_params);
/* The server's last word on one line, after where and what, into err. */
void hx_db_pg_error(hx_db_t *db, const PGresult *res, const char *what, char *err, size_t cap);
void hx_db_stmts_free(hx_db_t *db);
/* PostgreSQL: 0 when the connection is up (connecting again when it was lost, at most once per
 * backoff), else HX_DB_UNAVAILABLE with err. */
int hx_db_pg_usable(hx_db_t *db, char *err, size_t cap);

#endif
