/* Unit: hx_db, the services' SQL store, on both backends with the same tests: SQLite files in a
 * temporary directory, and a PostgreSQL server of Debian's package started for this suite on
 * 127.0.0.1 (hx_pgtest: started once before the tests, stopped after). Each test gets a
 * component of its own, so on PostgreSQL a schema of its own. The server restarted under an open
 * store has a suite of its own, with its own server. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/parameterized.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hx_db.h"
#define HX_PGTEST_ALWAYS 1
#include "hx_pgtest_hooks.h"

static char tmp[] = "/tmp/hx-db-XXXXXX";
static unsigned seq;

static void setup(void)
{
    cr_assert_not_null(mkdtemp(tmp));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_expect_eq(system(cmd), 0);
}

/* A URL for backend b ("sqlite" or "postgres") and a component name of this test's own. */
static void store_for(const char *b, char *url, size_t cap, char *component, size_t ccap)
{
    snprintf(component, ccap, "t%d_%u", (int)getpid(), ++seq);
    if (strcmp(b, "sqlite") == 0) {
        snprintf(url, cap, "sqlite:%s/%s.db", tmp, component);
        return;
    }
    const char *pg = getenv("HX_TEST_PG_URL");
    cr_assert_not_null(pg, "no PostgreSQL server for the tests: %s", getenv("HX_TEST_PG_ERROR"));
    snprintf(url, cap, "%s", pg);
}

/* A backend by name: parameters are copied into the test's process, so no pointers. */
typedef struct {
    char name[16];
} backend_t;

static struct criterion_test_params backends(void)
{
    static backend_t b[] = {{"sqlite"}, {"postgres"}};
    return cr_make_param_array(backend_t, b, 2);
}

static const hx_db_step_t steps[] = {
    {.sqlite = "CREATE TABLE notes (id TEXT PRIMARY KEY, n INTEGER NOT NULL, body TEXT)",
     .postgres = "CREATE TABLE notes (id TEXT PRIMARY KEY, n BIGINT NOT NULL, body TEXT)"},
    {.sqlite = "CREATE INDEX notes_n ON notes(n)", .postgres = "CREATE INDEX notes_n ON notes(n)"},
    {.sqlite = "ALTER TABLE notes ADD COLUMN tag TEXT NOT NULL DEFAULT 'none'",
     .postgres = "ALTER TABLE notes ADD COLUMN tag TEXT NOT NULL DEFAULT 'none'"},
};

static const char insert_sql[] = "INSERT INTO notes(id, n, body) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING";
static const char count_sql[] = "SELECT COUNT(*) FROM notes";

static int64_t count(hx_db_t *db)
{
    char err[512];
    hx_db_rows_t *r = hx_db_query(db, count_sql, NULL, 0, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(hx_db_next(r), 1);
    int64_t n = hx_db_int(r, 0);
    hx_db_rows_free(&r);
    return n;
}

static hx_db_t *open_or_fail(const char *url, const char *component, size_t n_steps)
{
    char err[1024];
    hx_db_t *db = hx_db_open(url, component, steps, n_steps, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    return db;
}

Test(db_url, a_url_names_its_backend_and_a_wrong_one_says_what_is_accepted)
{
    hx_db_kind_t k;
    const char *rest;
    char why[300];
    cr_assert_eq(hx_db_url_parse("sqlite:intake.db", &k, &rest, why, sizeof why), 0);
    cr_expect_eq(k, HX_DB_SQLITE);
    cr_expect_str_eq(rest, "intake.db");
    cr_assert_eq(hx_db_url_parse("sqlite:///var/lib/handoff/intake.db", &k, &rest, why, sizeof why), 0);
    cr_expect_str_eq(rest, "/var/lib/handoff/intake.db");
    cr_assert_eq(hx_db_url_parse("/data/intake.db", &k, &rest, why, sizeof why), 0, "a plain path: SQLite");
    cr_expect_eq(k, HX_DB_SQLITE);
    cr_assert_eq(hx_db_url_parse("postgresql://handoff@db:5432/handoff", &k, &rest, why, sizeof why), 0);
    cr_expect_eq(k, HX_DB_POSTGRES);
    cr_assert_eq(hx_db_url_parse("postgres://h@db/x?sslmode=require", &k, &rest, why, sizeof why), 0);
    cr_expect_eq(k, HX_DB_POSTGRES);
    cr_expect_eq(hx_db_url_parse("mysql://root@db/handoff", &k, &rest, why, sizeof why), -1);
    cr_expect(strstr(why, "'mysql://'") && strstr(why, "sqlite:PATH") && strstr(why, "postgresql://"), "%s", why);
    cr_expect_eq(hx_db_url_parse("", &k, &rest, why, sizeof why), -1);
    cr_expect(strstr(why, "empty"), "%s", why);
    cr_expect_eq(hx_db_url_parse("sqlite:", &k, &rest, why, sizeof why), -1);
    cr_expect(strstr(why, "no file"), "%s", why);
}

ParameterizedTestParameters(db, the_schema_is_brought_up_to_date_once)
{
    return backends();
}

ParameterizedTest(backend_t *backend, db, the_schema_is_brought_up_to_date_once, .init = setup, .fini = teardown)
{
    char url[400], comp[64], err[1024];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    hx_db_t *db = open_or_fail(url, comp, 2);
    cr_expect_eq(hx_db_found_version(db), 0, "a new store");
    hx_db_val_t a[] = {HX_DB_T("a"), HX_DB_I(1), HX_DB_T("first")};
    cr_assert_eq(hx_db_exec(db, insert_sql, a, 3, NULL, err, sizeof err), 0, "%s", err);
    hx_db_close(&db);

    db = open_or_fail(url, comp, 2);
    cr_expect_eq(hx_db_found_version(db), 2, "nothing to do");
    cr_expect_eq(count(db), 1, "the row kept");
    hx_db_close(&db);

    db = open_or_fail(url, comp, 3);            /* a newer program: the third step only */
    cr_expect_eq(hx_db_found_version(db), 2);
    hx_db_rows_t *r = hx_db_query(db, "SELECT tag FROM notes WHERE id = ?", (hx_db_val_t[]){HX_DB_T("a")}, 1, err,
                                  sizeof err);
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(hx_db_next(r), 1);
    cr_expect_str_eq(hx_db_text(r, 0), "none");
    hx_db_rows_free(&r);
    hx_db_close(&db);
}

ParameterizedTestParameters(db, a_store_newer_than_the_program_is_refused_and_left_alone)
{
    return backends();
}

ParameterizedTest(backend_t *backend, db, a_store_newer_than_the_program_is_refused_and_left_alone, .init = setup,
                  .fini = teardown)
{
    char url[400], comp[64], err[1024];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    hx_db_t *db = open_or_fail(url, comp, 3);
    hx_db_close(&db);
    cr_expect_null(hx_db_open(url, comp, steps, 2, err, sizeof err));
    char want[160];
    snprintf(want, sizeof want, "the %s schema is at version 3, newer than this program's 2", comp);
    cr_expect(strstr(err, want), "%s", err);
    db = open_or_fail(url, comp, 3);
    cr_expect_eq(hx_db_found_version(db), 3, "left as it was");
    hx_db_close(&db);
}

ParameterizedTestParameters(db, a_failed_step_is_undone_and_named)
{
    return backends();
}

ParameterizedTest(backend_t *backend, db, a_failed_step_is_undone_and_named, .init = setup, .fini = teardown)
{
    char url[400], comp[64], err[1024];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    const hx_db_step_t bad[] = {steps[0], {.sqlite = "CREATE INDEX x ON nowhere(n)",
                                           .postgres = "CREATE INDEX x ON nowhere(n)"}};
    cr_expect_null(hx_db_open(url, comp, bad, 2, err, sizeof err));
    char want[120];
    snprintf(want, sizeof want, "(the %s schema, step 2)", comp);
    cr_expect(strstr(err, want) && strstr(err, "nowhere"), "%s", err);
    hx_db_t *db = open_or_fail(url, comp, 2);
    cr_expect_eq(hx_db_found_version(db), 1, "step 1 stayed, step 2 was undone");
    hx_db_close(&db);
}

ParameterizedTestParameters(db, values_go_in_and_come_out_as_they_were)
{
    return backends();
}

ParameterizedTest(backend_t *backend, db, values_go_in_and_come_out_as_they_were, .init = setup, .fini = teardown)
{
    char url[400], comp[64], err[1024];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    hx_db_t *db = open_or_fail(url, comp, 1);
    const int64_t big = (int64_t)1 << 42;
    hx_db_val_t a[] = {HX_DB_T("it's ? a \"quote\""), HX_DB_I(big), (hx_db_val_t){.type = HX_DB_NULL}};
    int64_t changes = -1;
    cr_assert_eq(hx_db_exec(db, insert_sql, a, 3, &changes, err, sizeof err), 0, "%s", err);
    cr_expect_eq(changes, 1);
    cr_assert_eq(hx_db_exec(db, insert_sql, a, 3, &changes, err, sizeof err), 0, "%s", err);
    cr_expect_eq(changes, 0, "the same id again: nothing inserted");
    /* a ? inside a literal is text, not a placeholder */
    hx_db_rows_t *r = hx_db_query(db, "SELECT id, n, body, '?' FROM notes WHERE n = ?", (hx_db_val_t[]){HX_DB_I(big)},
                                  1, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(hx_db_next(r), 1);
    cr_expect_str_eq(hx_db_text(r, 0), "it's ? a \"quote\"");
    cr_expect_eq(hx_db_int(r, 1), big);
    cr_expect(hx_db_is_null(r, 2));
    cr_expect_str_eq(hx_db_text(r, 2), "");
    cr_expect_str_eq(hx_db_text(r, 3), "?");
    cr_expect_eq(hx_db_next(r), 0);
    hx_db_rows_free(&r);
    /* an error names the store and what went wrong, and the store goes on */
    cr_expect_eq(hx_db_exec(db, "INSERT INTO nowhere VALUES (?)", (hx_db_val_t[]){HX_DB_I(1)}, 1, NULL, err,
                            sizeof err), -1);
    cr_expect(strstr(err, "nowhere"), "%s", err);
    cr_expect_eq(count(db), 1);
    hx_db_close(&db);
}

ParameterizedTestParameters(db, only_a_committed_transaction_stays)
{
    return backends();
}

ParameterizedTest(backend_t *backend, db, only_a_committed_transaction_stays, .init = setup, .fini = teardown)
{
    char url[400], comp[64], err[1024];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    hx_db_t *db = open_or_fail(url, comp, 1);
    cr_assert_eq(hx_db_begin(db, err, sizeof err), 0, "%s", err);
    cr_expect(hx_db_in_transaction(db));
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "r%d", i);
        cr_assert_eq(hx_db_exec(db, insert_sql, (hx_db_val_t[]){HX_DB_T(id), HX_DB_I(i), HX_DB_T("x")}, 3, NULL, err,
                                sizeof err), 0, "%s", err);
    }
    hx_db_rollback(db);
    cr_expect_not(hx_db_in_transaction(db));
    cr_expect_eq(count(db), 0, "rolled back");
    cr_assert_eq(hx_db_begin(db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hx_db_exec(db, insert_sql, (hx_db_val_t[]){HX_DB_T("c"), HX_DB_I(7), HX_DB_T("x")}, 3, NULL, err,
                            sizeof err), 0, "%s", err);
    cr_assert_eq(hx_db_commit(db, err, sizeof err), 0, "%s", err);
    hx_db_close(&db);
    db = open_or_fail(url, comp, 1);
    cr_expect_eq(count(db), 1, "committed: there after a reopen");
    hx_db_close(&db);
}

ParameterizedTestParameters(db, a_failed_statement_undone_to_its_savepoint_leaves_the_rest)
{
    return backends();
}

static int insert_plain(hx_db_t *db, const char *id, char *err, size_t cap)
{
    /* no ON CONFLICT: a second id fails (a message whose work the store refuses) */
    return hx_db_exec(db, "INSERT INTO notes(id, n, body) VALUES (?, 1, 'x')", (hx_db_val_t[]){HX_DB_T(id)}, 1, NULL,
                      err, cap);
}

/* A burst of messages in one transaction, one of which the store refuses: with a savepoint per
 * message the others are committed; without, the commit never says "done" for work that was
 * not kept (PostgreSQL rolls the whole transaction back: its COMMIT must fail). */
ParameterizedTest(backend_t *backend, db, a_failed_statement_undone_to_its_savepoint_leaves_the_rest, .init = setup,
                  .fini = teardown)
{
    char url[400], comp[64], err[1024];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    hx_db_t *db = open_or_fail(url, comp, 1);
    const char *ids[] = {"m1", "m2", "m1", "m3"};   /* the third is refused: m1 is there */
    cr_assert_eq(hx_db_begin(db, err, sizeof err), 0, "%s", err);
    int refused = 0;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(hx_db_savepoint(db, err, sizeof err), 0, "%s", err);
        if (insert_plain(db, ids[i], err, sizeof err) == 0) {
            cr_assert_eq(hx_db_release(db, err, sizeof err), 0, "%s", err);
        } else {
            refused++;
            cr_expect(strstr(err, "notes") || strstr(err, "UNIQUE") || strstr(err, "unique"), "%s", err);
            cr_assert_eq(hx_db_rollback_to(db, err, sizeof err), 0, "%s", err);
        }
    }
    cr_expect_eq(refused, 1);
    cr_assert_eq(hx_db_commit(db, err, sizeof err), 0, "%s", err);
    cr_expect_eq(count(db), 3, "m1, m2 and m3 kept");

    /* the same without savepoints: whatever the backend does, "committed" means kept */
    cr_assert_eq(hx_db_begin(db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(insert_plain(db, "m4", err, sizeof err), 0, "%s", err);
    cr_expect_neq(insert_plain(db, "m2", err, sizeof err), 0);
    int rc = hx_db_commit(db, err, sizeof err);
    int64_t after = count(db);
    if (rc == 0)
        cr_expect_eq(after, 4, "commit said done: m4 must be there");
    else
        cr_expect(after == 3 && strstr(err, "rolled back"), "commit failed (%s): nothing of it kept (%lld rows)", err,
                  (long long)after);
    if (strcmp(backend->name, "postgres") == 0)
        cr_expect_neq(rc, 0, "PostgreSQL aborts the transaction at the failed statement");
    cr_expect_not(hx_db_in_transaction(db));
    hx_db_close(&db);
}

ParameterizedTestParameters(db, a_statement_in_use_asked_for_again_is_another_and_both_read_their_rows)
{
    return backends();
}

static const char nested_sql[] = "SELECT id, n, body FROM notes WHERE n >= ? ORDER BY id";

/* Statements stepped row by row: a query run again inside its own loop (scheduling does, on a
 * referral's bookings) gets a statement of its own, and both read their rows; blobs and NULLs
 * come back as they went in; a text made at run time (hx_db_prep_text) runs once and goes. */
ParameterizedTest(backend_t *backend, db, a_statement_in_use_asked_for_again_is_another_and_both_read_their_rows,
                  .init = setup, .fini = teardown)
{
    char url[400], comp[64], err[1024];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    hx_db_t *db = open_or_fail(url, comp, 1);
    cr_assert_eq(hx_db_begin(db, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%d", i);
        hx_db_stmt_t *st = hx_db_prep(db, "INSERT INTO notes(id, n, body) VALUES (?, ?, ?)");
        cr_assert_not_null(st, "%s", hx_db_errmsg(db));
        cr_assert_eq(hx_db_bind_text(st, 1, id), 0);
        cr_assert_eq(hx_db_bind_int(st, 2, i), 0);
        cr_assert_eq(i == 1 ? hx_db_bind_null(st, 3) : hx_db_bind_text(st, 3, "x"), 0);
        cr_assert_eq(hx_db_step(st), HX_DB_DONE, "%s", hx_db_errmsg(db));
        cr_expect_eq(hx_db_changes(db), 1);
        hx_db_done(st);
    }
    cr_assert_eq(hx_db_commit(db, err, sizeof err), 0, "%s", err);
    int outer_rows = 0, inner_rows = 0;
    hx_db_stmt_t *outer = hx_db_prep(db, nested_sql);
    cr_assert_not_null(outer, "%s", hx_db_errmsg(db));
    cr_assert_eq(hx_db_bind_int(outer, 1, 0), 0);
    while (hx_db_step(outer) == HX_DB_ROW) {
        outer_rows++;
        char id[8];
        snprintf(id, sizeof id, "%s", hx_db_col_text(outer, 0));
        cr_expect_eq(hx_db_col_null(outer, 2), strcmp(id, "s1") == 0, "%s: body NULL only for s1", id);
        hx_db_stmt_t *inner = hx_db_prep(db, nested_sql);
        cr_assert_not_null(inner, "%s", hx_db_errmsg(db));
        cr_assert_neq(inner, outer, "a statement of its own");
        cr_assert_eq(hx_db_bind_int(inner, 1, hx_db_col_int(outer, 1)), 0);
        while (hx_db_step(inner) == HX_DB_ROW)
            inner_rows++;
        hx_db_done(inner);
        cr_expect_str_eq(hx_db_col_text(outer, 0), id, "the outer row is still there");
    }
    hx_db_done(outer);
    cr_expect_eq(outer_rows, 3);
    cr_expect_eq(inner_rows, 3 + 2 + 1, "each inner query from the outer row's n on");
    static const uint8_t bytes[] = {0x00, 0x73, 0x32, 0xff, 0x00};
    bool pg = strcmp(backend->name, "postgres") == 0;
    cr_assert_eq(hx_db_run(db, pg ? "CREATE TABLE blobs (b bytea)" : "CREATE TABLE blobs (b BLOB)"), 0, "%s",
                 hx_db_errmsg(db));
    char sql[64];
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (?)", "blobs");     /* a text made at run time */
    hx_db_stmt_t *t = hx_db_prep_text(db, sql);
    cr_assert_not_null(t, "%s", hx_db_errmsg(db));
    cr_assert_eq(hx_db_bind_blob(t, 1, bytes, sizeof bytes), 0);
    cr_assert_eq(hx_db_step(t), HX_DB_DONE, "%s", hx_db_errmsg(db));
    hx_db_done(t);
    t = hx_db_prep(db, "SELECT b, length(b) FROM blobs");
    cr_assert_not_null(t, "%s", hx_db_errmsg(db));
    cr_assert_eq(hx_db_step(t), HX_DB_ROW, "%s", hx_db_errmsg(db));
    cr_expect_eq(hx_db_col_bytes(t, 0), sizeof bytes);
    cr_expect_eq(memcmp(hx_db_col_blob(t, 0), bytes, sizeof bytes), 0, "a blob with NULs comes back whole");
    cr_expect_eq(hx_db_col_int(t, 1), (int64_t)sizeof bytes);
    hx_db_done(t);
    hx_db_close(&db);
}

ParameterizedTestParameters(db, programs_opening_a_new_store_together_migrate_it_once)
{
    return backends();
}

/* Two scheduling workers, or intake's replicas, starting at once on a new store: every one
 * opens it, each step is applied once (a second CREATE TABLE would fail the opener). */
ParameterizedTest(backend_t *backend, db, programs_opening_a_new_store_together_migrate_it_once, .init = setup,
                  .fini = teardown)
{
    char url[400], comp[64];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    enum { N = 6 };
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        cr_assert_geq(kids[i], 0);
        if (kids[i] == 0) {
            char err[1024];
            hx_db_t *db = hx_db_open(url, comp, steps, 3, err, sizeof err);
            int opened = db != NULL;
            if (!opened)
                fprintf(stderr, "opener %d: %s\n", i, err);
            hx_db_close(&db);
            _exit(opened ? 0 : 1);
        }
    }
    for (int i = 0; i < N; i++) {
        int status;
        cr_assert_eq(waitpid(kids[i], &status, 0), kids[i]);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "opener %d failed", i);
    }
    hx_db_t *db = open_or_fail(url, comp, 3);
    cr_expect_eq(hx_db_found_version(db), 3);
    hx_db_close(&db);
}

/* The PostgreSQL server stopped under an open store, then started again: while it is down a
 * transaction is refused as unavailable (not an ordinary error), and once it is back the store
 * connects again by itself, with what was committed before. */
Test(db_pg_restart, a_restarted_server_is_reached_again_with_what_was_committed)
{
    hx_pgtest_t pg;
    char why[2048], err[1024];
    cr_assert_eq(hx_pgtest_start(&pg, why, sizeof why), 0, "%s", why);
    hx_db_t *db = hx_db_open(pg.url, "restart", steps, 1, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(hx_db_begin(db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hx_db_exec(db, insert_sql, (hx_db_val_t[]){HX_DB_T("kept"), HX_DB_I(1), HX_DB_T("x")}, 3, NULL, err,
                            sizeof err), 0, "%s", err);
    cr_assert_eq(hx_db_commit(db, err, sizeof err), 0, "%s", err);

    cr_assert_eq(hx_pgtest_stop(&pg), 0);
    cr_expect_eq(hx_db_begin(db, err, sizeof err), HX_DB_UNAVAILABLE, "%s", err);
    cr_expect_eq(hx_db_ping(db, err, sizeof err), -1);
    cr_expect(strstr(err, "127.0.0.1"), "the message names where: %s", err);

    cr_assert_eq(hx_pgtest_restart(&pg, why, sizeof why), 0, "%s", why);
    cr_expect_eq(hx_db_ping(db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hx_db_begin(db, err, sizeof err), 0, "%s", err);
    cr_expect_eq(count(db), 1);
    hx_db_rollback(db);
    hx_db_close(&db);
    hx_pgtest_destroy(&pg);
}

/* Statements outside a transaction (a web request's reads and single writes) find a server
 * that was restarted by themselves: a read that meets the closed connection is tried once more
 * on a new one; while the server is down they fail with the store named, and are not held. */
Test(db_pg_restart, statements_outside_a_transaction_reconnect_by_themselves)
{
    hx_pgtest_t pg;
    char why[2048], err[1024];
    cr_assert_eq(hx_pgtest_start(&pg, why, sizeof why), 0, "%s", why);
    hx_db_t *db = hx_db_open(pg.url, "restart2", steps, 1, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    hx_db_stmt_t *st = hx_db_prep(db, insert_sql);
    cr_assert(st && hx_db_bind_text(st, 1, "a") == 0 && hx_db_bind_int(st, 2, 1) == 0);
    cr_assert_eq(hx_db_step(st), HX_DB_DONE, "%s", hx_db_errmsg(db));
    hx_db_done(st);

    cr_assert_eq(hx_pgtest_stop(&pg), 0);
    st = hx_db_prep(db, count_sql);
    cr_assert_not_null(st);
    cr_expect_eq(hx_db_step(st), -1, "the server is down");
    cr_expect(strstr(hx_db_errmsg(db), "127.0.0.1"), "%s", hx_db_errmsg(db));
    hx_db_done(st);

    cr_assert_eq(hx_pgtest_restart(&pg, why, sizeof why), 0, "%s", why);
    /* the backoff after the failed attempt (100 ms) may still run: a read waits it out once */
    int step = -1;
    for (int i = 0; i < 100 && step < 0; i++) {
        st = hx_db_prep(db, count_sql);
        cr_assert_not_null(st, "%s", hx_db_errmsg(db));
        step = hx_db_step(st);
        if (step == HX_DB_ROW)
            cr_expect_eq(hx_db_col_int(st, 0), 1, "what was written before the restart");
        hx_db_done(st);
        if (step < 0)
            cr_expect(strstr(hx_db_errmsg(db), "trying again in"), "only the backoff holds it: %s",
                      hx_db_errmsg(db));
        if (step < 0)
            usleep(20000);          /* the backoff's own clock: at most 100 ms */
    }
    cr_expect_eq(step, HX_DB_ROW, "reached again without a transaction: %s", hx_db_errmsg(db));
    st = hx_db_prep(db, insert_sql);
    cr_assert(st && hx_db_bind_text(st, 1, "b") == 0 && hx_db_bind_int(st, 2, 2) == 0);
    cr_expect_eq(hx_db_step(st), HX_DB_DONE, "a write after it: %s", hx_db_errmsg(db));
    hx_db_done(st);
    hx_db_close(&db);
    hx_pgtest_destroy(&pg);
}

/* A unique or primary key's violation is told from other failures (a name taken, against a
 * store that failed). */
ParameterizedTestParameters(db, a_taken_key_is_told_from_other_failures)
{
    return backends();
}

ParameterizedTest(backend_t *backend, db, a_taken_key_is_told_from_other_failures, .init = setup, .fini = teardown)
{
    char url[400], comp[64];
    store_for(backend->name, url, sizeof url, comp, sizeof comp);
    hx_db_t *db = open_or_fail(url, comp, 1);
    static const char plain[] = "INSERT INTO notes(id, n) VALUES (?, ?)";
    for (int i = 0; i < 2; i++) {
        hx_db_stmt_t *st = hx_db_prep(db, plain);
        cr_assert(st && hx_db_bind_text(st, 1, "same") == 0 && hx_db_bind_int(st, 2, i) == 0);
        cr_expect_eq(hx_db_step(st), i ? -1 : HX_DB_DONE, "%s", hx_db_errmsg(db));
        cr_expect_eq(hx_db_unique_violation(db), i == 1, "insert %d", i);
        hx_db_done(st);
    }
    hx_db_stmt_t *st = hx_db_prep(db, plain);
    cr_assert(st && hx_db_bind_text(st, 1, "other") == 0 && hx_db_bind_null(st, 2) == 0);
    cr_expect_eq(hx_db_step(st), -1, "n is NOT NULL");
    cr_expect_not(hx_db_unique_violation(db), "another constraint: not a taken key");
    hx_db_done(st);
    hx_db_close(&db);
}

/* The password from the file HANDOFF_DB_PASSWORD_FILE names (the suite's server trusts
 * 127.0.0.1, so any password opens it): read when there, and a file missing or empty is an
 * error that names it, not a connection tried without it. */
Test(db_pg, a_password_file_is_read_and_a_missing_or_empty_one_is_named, .init = setup, .fini = teardown)
{
    char url[400], comp[64], err[1024], path[400];
    store_for("postgres", url, sizeof url, comp, sizeof comp);
    unsetenv("PGPASSWORD");
    snprintf(path, sizeof path, "%s/pg_password", tmp);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("s3cret-from-a-file\n", f);
    fclose(f);
    setenv("HANDOFF_DB_PASSWORD_FILE", path, 1);
    hx_db_t *db = hx_db_open(url, comp, steps, 1, err, sizeof err);
    cr_expect_not_null(db, "%s", err);
    hx_db_close(&db);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_expect_null(hx_db_open(url, comp, steps, 1, err, sizeof err));
    cr_expect(strstr(err, "HANDOFF_DB_PASSWORD_FILE=") && strstr(err, path) && strstr(err, "empty"), "%s", err);
    snprintf(path, sizeof path, "%s/none", tmp);
    setenv("HANDOFF_DB_PASSWORD_FILE", path, 1);
    cr_expect_null(hx_db_open(url, comp, steps, 1, err, sizeof err));
    cr_expect(strstr(err, path) && strstr(err, "No such file"), "%s", err);
    unsetenv("HANDOFF_DB_PASSWORD_FILE");
}
