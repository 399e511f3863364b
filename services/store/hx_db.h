/* hx_db — a service's SQL store on SQLite (embedded: the default) or PostgreSQL (libpq),
 * chosen by a URL:
 *
 *   sqlite:PATH  or a plain PATH      a file beside the service (WAL, synchronous=FULL, 0600)
 *   postgresql://USER@HOST:PORT/DB    (or postgres://…; libpq's URI: ?sslmode=… and the rest)
 *
 * One set of statements serves both: `?` placeholders (numbered $1, $2, … for PostgreSQL), values
 * bound as text, 64-bit integers, bytes or NULL, rows read column by column the same way. What
 * the two dialects write differently (a table's DDL) comes as a schema step per dialect; the
 * steps applied are counted in the database itself (table handoff_schema: component, version),
 * each step in the transaction that applies it, and a database a newer program has written is
 * refused with a message saying so. On PostgreSQL each component keeps its tables in a schema
 * of its own name (created at open; the connection's search_path), so services may share one
 * database.
 *
 * PostgreSQL: a lost connection is found at the next transaction (hx_db_begin), which reports
 * HX_DB_UNAVAILABLE and tries to connect again, at most once per backoff (doubling from
 * 100 ms to 5 s); a transaction begun on a live connection that fails is an ordinary error.
 * A statement stepped outside a transaction connects again the same way, and a read (SELECT)
 * that finds the connection closed is tried once more on a new one.
 * Connecting waits at most 2 s for a server that does not answer (connect_timeout in the URL
 * says otherwise), so a service's loop is not held past the broker's liveness window.
 * The password: the URL's, else libpq's own (PGPASSWORD, ~/.pgpass), else the first line of the
 * file HANDOFF_DB_PASSWORD_FILE names (a secret mounted as a file: a container's /run/secrets),
 * read at each connection; that file unreadable or empty is an error naming it.
 * One connection, one thread: the caller serialises. */
#ifndef HX_DB_H
#define HX_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hx_db hx_db_t;
typedef struct hx_metrics hx_metrics_t;
typedef struct hx_db_rows hx_db_rows_t;

typedef enum { HX_DB_SQLITE = 1, HX_DB_POSTGRES = 2 } hx_db_kind_t;

enum { HX_DB_UNAVAILABLE = -2 };    /* the database cannot be reached now (PostgreSQL) */

/* One schema step: the SQL (one or more statements) for each dialect. */
typedef struct {
    const char *sqlite;
    const char *postgres;
} hx_db_step_t;

typedef enum { HX_DB_NULL, HX_DB_TEXT, HX_DB_INT, HX_DB_BLOB } hx_db_type_t;

typedef struct {
    hx_db_type_t type;
    const char *text;               /* HX_DB_TEXT: NUL-terminated */
    int64_t i;                      /* HX_DB_INT */
    const void *blob;               /* HX_DB_BLOB: len bytes */
    size_t len;
} hx_db_val_t;

#define HX_DB_T(s) ((hx_db_val_t){.type = HX_DB_TEXT, .text = (s)})
#define HX_DB_I(v) ((hx_db_val_t){.type = HX_DB_INT, .i = (int64_t)(v)})
#define HX_DB_B(p, n) ((hx_db_val_t){.type = HX_DB_BLOB, .blob = (p), .len = (n)})
#define HX_DB_NONE ((hx_db_val_t){.type = HX_DB_NULL})

/* Which backend a URL names: 0 with *kind and the part after the scheme (a path, or the
 * PostgreSQL URL whole), or -1 with why (e.g. "mysql://…: not a database this program can use:
 * sqlite:PATH or postgresql://…"). Pure. */
int hx_db_url_parse(const char *url, hx_db_kind_t *kind, const char **rest, char *why, size_t cap);
/* A PostgreSQL URL as messages and manifests show it: postgresql://USER@HOST:PORT/DB, without
 * its password (libpq's parser; an unreadable one says so). */
void hx_db_url_display(const char *url, char *out, size_t cap);

/* Opens the store and brings component's schema to len(steps): each step not applied yet, in
 * its own transaction. NULL with err naming the store (its path, or the URL without password)
 * and what failed, e.g. "postgresql://handoff@db:5432/handoff: the intake schema is at version
 * 3, newer than this program's 2: ...". A PostgreSQL server not reachable at open is an error
 * too (the caller decides whether to wait and try again). steps NULL: the schema is left as it
 * is, versions and all (a store that keeps its own, or a reader). */
hx_db_t *hx_db_open(const char *url, const char *component, const hx_db_step_t *steps, size_t n_steps, char *err,
                    size_t cap);
void hx_db_close(hx_db_t **self_p);
/* What hx_db_open does with steps, for a store opened without (one that first brings an older
 * file of its own up to the point where the steps take over). 0, or -1 with err. */
int hx_db_migrate(hx_db_t *db, const char *component, const hx_db_step_t *steps, size_t n_steps, char *err,
                  size_t cap);

hx_db_kind_t hx_db_kind(const hx_db_t *db);
/* The store in words for messages: the file's path, or the URL without its password. */
const char *hx_db_where(const hx_db_t *db);
/* The schema version of component found at open (before the steps), 0 for a new store. */
int hx_db_found_version(const hx_db_t *db);

/* A write transaction (SQLite: BEGIN IMMEDIATE, waiting up to 10 s for another writer;
 * PostgreSQL: READ COMMITTED). 0, HX_DB_UNAVAILABLE (PostgreSQL unreachable: try later) or -1,
 * with err. */
int hx_db_begin(hx_db_t *db, char *err, size_t cap);
/* 0 once durable (SQLite: synchronous=FULL; PostgreSQL: the server's synchronous_commit), or
 * -1 with err, the transaction then rolled back. */
int hx_db_commit(hx_db_t *db, char *err, size_t cap);
/* Whether the database answers now (PostgreSQL: connecting again at once when the connection
 * was lost, whatever the backoff): 0, or -1 with err. Outside a transaction. */
int hx_db_ping(hx_db_t *db, char *err, size_t cap);
void hx_db_rollback(hx_db_t *db);
/* Inside a transaction: a savepoint (one at a time), then either released (its work stays in
 * the transaction) or rolled back to (its work undone, the transaction usable again: on
 * PostgreSQL a failed statement otherwise dooms the whole transaction, and its COMMIT fails). */
int hx_db_savepoint(hx_db_t *db, char *err, size_t cap);
int hx_db_release(hx_db_t *db, char *err, size_t cap);
int hx_db_rollback_to(hx_db_t *db, char *err, size_t cap);
bool hx_db_in_transaction(const hx_db_t *db);   /* as the connection says, whoever began it */

/* Runs one statement with args (n of them, for its `?` in order). *changes (may be NULL): rows
 * inserted, updated or deleted. 0 or -1 with err. sql must outlive db: statements are
 * prepared once and kept by its address. */
int hx_db_exec(hx_db_t *db, const char *sql, const hx_db_val_t *args, size_t n, int64_t *changes, char *err,
               size_t cap);

/* A query: its rows one at a time with hx_db_next (1 a row, 0 the end, -1 an error, with err
 * from hx_db_rows_error); columns from 0. Free before the next statement on the same db. */
hx_db_rows_t *hx_db_query(hx_db_t *db, const char *sql, const hx_db_val_t *args, size_t n, char *err, size_t cap);
int hx_db_next(hx_db_rows_t *r);
bool hx_db_is_null(hx_db_rows_t *r, int col);
const char *hx_db_text(hx_db_rows_t *r, int col);  /* "" for NULL; valid until the next hx_db_next */
int64_t hx_db_int(hx_db_rows_t *r, int col);       /* 0 for NULL */
const char *hx_db_rows_error(const hx_db_rows_t *r);
void hx_db_rows_free(hx_db_rows_t **self_p);

/* The store's figures on m, labelled store="<component>": handoff_store_statement_seconds,
 * _commit_seconds and _transaction_seconds (histograms; the last one's rate(_sum) is how busy
 * the service's one connection is), handoff_store_connected (gauge), _reconnects_total and
 * _errors_total. 0, or -1 (no memory, or m has those names with another meaning). */
int hx_db_metrics(hx_db_t *db, hx_metrics_t *m);

/* Statements stepped row by row, as SQLite's own API, on either backend. sql must be a string
 * literal (kept: found again by its address); `?` and `?NNN` as SQLite numbers them. A
 * statement is prepared once per connection and kept; one still in use when asked for again
 * (a query inside the loop of another) gets one of its own. Give each back with hx_db_done.
 * NULL, or -1 from the others, with why in hx_db_errmsg. On PostgreSQL a statement is prepared
 * on the server at its first step (a lost connection made again there first): its errors show
 * there. */
typedef struct hx_db_stmt hx_db_stmt_t;
enum { HX_DB_DONE = 0, HX_DB_ROW = 1 };

hx_db_stmt_t *hx_db_prep(hx_db_t *db, const char *sql);
/* The same for a text made at run time (copied; prepared for this one use, never kept). */
hx_db_stmt_t *hx_db_prep_text(hx_db_t *db, const char *sql);
/* Its bindings cleared and its rows let go, ready for the next hx_db_prep. NULL is ignored. */
void hx_db_done(hx_db_stmt_t *st);
/* Run again from the start with the same bindings (change some first if need be). */
void hx_db_reset(hx_db_stmt_t *st);
/* Parameters from 1; values are copied. */
int hx_db_bind_text(hx_db_stmt_t *st, int idx, const char *s);   /* NULL: SQL NULL */
int hx_db_bind_textn(hx_db_stmt_t *st, int idx, const char *s, size_t len);
int hx_db_bind_int(hx_db_stmt_t *st, int idx, int64_t v);
int hx_db_bind_blob(hx_db_stmt_t *st, int idx, const void *p, size_t len);
int hx_db_bind_null(hx_db_stmt_t *st, int idx);
/* HX_DB_ROW, HX_DB_DONE (hx_db_changes then says how many rows it wrote), or -1. */
int hx_db_step(hx_db_stmt_t *st);
/* The current row's columns, from 0. Text and blobs stay valid until the next step. A boolean
 * (PostgreSQL's true/false) reads as 1/0. */
bool hx_db_col_null(hx_db_stmt_t *st, int col);
int64_t hx_db_col_int(hx_db_stmt_t *st, int col);
double hx_db_col_double(hx_db_stmt_t *st, int col);
const char *hx_db_col_text(hx_db_stmt_t *st, int col);    /* "" for NULL */
const void *hx_db_col_blob(hx_db_stmt_t *st, int col);    /* NULL for NULL (or empty on SQLite) */
size_t hx_db_col_bytes(hx_db_stmt_t *st, int col);
int64_t hx_db_changes(const hx_db_t *db);
const char *hx_db_errmsg(const hx_db_t *db);
/* Whether the last hx_db_step failed on a unique or primary key (a name taken). */
bool hx_db_unique_violation(const hx_db_t *db);
/* One or more statements without parameters (DDL, BEGIN, SAVEPOINT …). 0, or -1 with why in
 * hx_db_errmsg. */
int hx_db_run(hx_db_t *db, const char *sql);

#endif
