/* handoff admin migrate — a network's service state moved from its SQLite files into
 * PostgreSQL: intake's record (intake.db), scheduling's referrals, bookings, calendar, wait
 * list, care threads and history (scheduling.db) and the portal's accounts (web-accounts.db:
 * users, sessions, the audit, the outbox, the FHIR API's clients), table by table, each
 * component in one transaction of the target. The target's schema is made with the programs'
 * own steps (intake_store.h, hx_booking_pg_steps, hx_accounts_store.h), so what lands is what
 * the programs would have written there; a target that already holds rows is refused.
 * Sealed values (the data key) are copied as they are: the same --data-key opens them. */
#include "cli_cmd.h"
#include "cli_help.h"
#include "hx_booking_store.h"
#include "hx_accounts_store.h"
#include "hx_db.h"
#include "intake_store.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_COLS 32

typedef struct {
    const char *name;               /* intake, scheduling: the PostgreSQL schema */
    const char *file;               /* its SQLite file in a data directory */
} component_t;

static const component_t components[] = {
    {"intake", "intake.db"}, {"scheduling", "scheduling.db"}, {"accounts", "web-accounts.db"}};

/* Scheduling's directory first: therapists and hours refer to clinics. Tables made from the
 * others (waitlist_counts: kept by a trigger as the wait list is copied) and the stores' own
 * bookkeeping are not copied. */
static const char *const first[] = {"clinics", "therapists", "hours"};

static bool skipped(const char *t)
{
    return !strncmp(t, "sqlite_", 7) || !strcmp(t, "handoff_schema") || !strcmp(t, "waitlist_counts") ||
           !strcmp(t, "calendar_version");
}

/* A one-row integer answer of src's. -1 on an error (in err). */
static int64_t one_int(hx_db_t *db, const char *sql, const char *arg, char *err, size_t cap)
{
    hx_db_stmt_t *st = hx_db_prep_text(db, sql);
    int step = st && (!arg || hx_db_bind_text(st, 1, arg) == 0) ? hx_db_step(st) : -1;
    int64_t v = step == HX_DB_ROW ? hx_db_col_int(st, 0) : step == HX_DB_DONE ? 0 : -1;
    if (step < 0)
        snprintf(err, cap, "%s", hx_db_errmsg(db));
    hx_db_done(st);
    return v;
}

/* The source's tables to copy, in order (first[], then the rest by name). */
static int tables_of(hx_db_t *src, char (*out)[64], size_t cap, size_t *n, char *err, size_t ecap)
{
    *n = 0;
    for (size_t i = 0; i < sizeof first / sizeof *first; i++)
        if (one_int(src, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", first[i], err,
                    ecap) == 1 && *n < cap)
            snprintf(out[(*n)++], 64, "%s", first[i]);
    hx_db_stmt_t *st = hx_db_prep_text(src, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    int step;
    while (st && (step = hx_db_step(st)) == HX_DB_ROW) {
        const char *t = hx_db_col_text(st, 0);
        bool dup = false;
        for (size_t i = 0; i < *n; i++)
            dup |= !strcmp(out[i], t);
        if (!dup && !skipped(t) && *n < cap)
            snprintf(out[(*n)++], 64, "%s", t);
    }
    int rc = st && step == HX_DB_DONE ? 0 : -1;
    if (rc)
        snprintf(err, ecap, "%s", hx_db_errmsg(src));
    hx_db_done(st);
    return rc;
}

typedef enum { COL_TEXT, COL_INT, COL_BYTES } col_kind_t;

/* Copies table t from src to dst (its PostgreSQL schema component): the source's columns,
 * each bound as the target's column type wants it. *rows: how many. */
static int copy_table(hx_db_t *src, hx_db_t *dst, const char *component, const char *t, int64_t *rows, char *err,
                      size_t cap)
{
    char names[MAX_COLS][64];
    col_kind_t kinds[MAX_COLS];
    size_t n = 0;
    char sql[4096];
    snprintf(sql, sizeof sql, "SELECT name FROM pragma_table_info('%.63s') ORDER BY cid", t);
    hx_db_stmt_t *st = hx_db_prep_text(src, sql);
    int step = -1;
    while (st && (step = hx_db_step(st)) == HX_DB_ROW && n < MAX_COLS)
        snprintf(names[n++], sizeof names[0], "%s", hx_db_col_text(st, 0));
    hx_db_done(st);
    if (!st || n == 0) {
        snprintf(err, cap, "%.600s: the columns of %.63s: %.900s", hx_db_where(src), t, hx_db_errmsg(src));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        hx_db_stmt_t *ty = hx_db_prep(dst, "SELECT data_type FROM information_schema.columns "
                                           "WHERE table_schema = ? AND table_name = ? AND column_name = ?");
        step = ty && hx_db_bind_text(ty, 1, component) == 0 && hx_db_bind_text(ty, 2, t) == 0 &&
                       hx_db_bind_text(ty, 3, names[i]) == 0
                   ? hx_db_step(ty)
                   : -1;
        const char *type = step == HX_DB_ROW ? hx_db_col_text(ty, 0) : "";
        kinds[i] = !strcmp(type, "bytea") ? COL_BYTES : strstr(type, "int") ? COL_INT : COL_TEXT;
        hx_db_done(ty);
        if (step != HX_DB_ROW) {
            snprintf(err, cap, "%s.%.63s has no column %.63s here (%.900s)", component, t, names[i],
                     step < 0 ? hx_db_errmsg(dst) : "a store of another version: run this version's programs on "
                                                    "it once first");
            return -1;
        }
    }
    size_t k = (size_t)snprintf(sql, sizeof sql, "SELECT ");
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(sql + k, sizeof sql - k, "%s\"%s\"", i ? ", " : "", names[i]);
    snprintf(sql + k, sizeof sql - k, " FROM \"%s\"", t);
    hx_db_stmt_t *rd = hx_db_prep_text(src, sql);
    k = (size_t)snprintf(sql, sizeof sql, "INSERT INTO \"%s\" (", t);
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(sql + k, sizeof sql - k, "%s\"%s\"", i ? ", " : "", names[i]);
    k += (size_t)snprintf(sql + k, sizeof sql - k, ") VALUES (");
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(sql + k, sizeof sql - k, "%s?", i ? ", " : "");
    snprintf(sql + k, sizeof sql - k, ")");
    hx_db_stmt_t *wr = rd ? hx_db_prep_text(dst, sql) : NULL;
    int rc = rd && wr ? 0 : -1;
    if (rc)
        snprintf(err, cap, "%.63s: %.900s", t, hx_db_errmsg(rd ? dst : src));
    *rows = 0;
    while (rc == 0 && (step = hx_db_step(rd)) == HX_DB_ROW) {
        hx_db_reset(wr);
        for (size_t i = 0; i < n && rc == 0; i++) {
            int idx = (int)i + 1;
            if (hx_db_col_null(rd, (int)i))
                rc = hx_db_bind_null(wr, idx);
            else if (kinds[i] == COL_BYTES) {
                /* a sealed value, or a clear one SQLite kept as text: the same bytes */
                const void *p = hx_db_col_blob(rd, (int)i);
                rc = hx_db_bind_blob(wr, idx, p, hx_db_col_bytes(rd, (int)i));
            } else if (kinds[i] == COL_INT)
                rc = hx_db_bind_int(wr, idx, hx_db_col_int(rd, (int)i));
            else
                rc = hx_db_bind_text(wr, idx, hx_db_col_text(rd, (int)i));
        }
        if (rc == 0 && hx_db_step(wr) != HX_DB_DONE) {
            snprintf(err, cap, "%.63s, row %lld: %.900s", t, (long long)*rows + 1, hx_db_errmsg(dst));
            rc = -1;
        }
        if (rc == 0)
            ++*rows;
    }
    if (rc == 0 && step != HX_DB_DONE) {
        snprintf(err, cap, "%.63s: %.900s", t, hx_db_errmsg(src));
        rc = -1;
    }
    hx_db_done(rd);
    hx_db_done(wr);
    return rc;
}

/* Table t's identity columns (audit.seq, mail_outbox.id: copied with their values) go on
 * from the largest value copied, not from 1. */
static int identities_follow(hx_db_t *dst, const char *component, const char *t, char *err, size_t cap)
{
    char cols[8][64];
    size_t n = 0;
    hx_db_stmt_t *st = hx_db_prep(dst, "SELECT column_name FROM information_schema.columns "
                                       "WHERE table_schema = ? AND table_name = ? AND is_identity = 'YES'");
    int step = st && hx_db_bind_text(st, 1, component) == 0 && hx_db_bind_text(st, 2, t) == 0 ? HX_DB_ROW : -1;
    while (st && step == HX_DB_ROW && (step = hx_db_step(st)) == HX_DB_ROW && n < 8)
        snprintf(cols[n++], sizeof cols[0], "%s", hx_db_col_text(st, 0));
    hx_db_done(st);
    int rc = step == HX_DB_DONE || step == HX_DB_ROW ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char sql[600];
        snprintf(sql, sizeof sql, "SELECT setval(pg_get_serial_sequence('%s.\"%s\"', '%s'), "
                 "coalesce((SELECT max(\"%s\") FROM \"%s\"), 0) + 1, false)", component, t, cols[i], cols[i], t);
        hx_db_stmt_t *sv = hx_db_prep_text(dst, sql);
        rc = sv && hx_db_step(sv) == HX_DB_ROW ? 0 : -1;
        hx_db_done(sv);
    }
    if (rc)
        snprintf(err, cap, "%.63s: its identity column: %.900s", t, hx_db_errmsg(dst));
    return rc;
}

/* One component: src (a SQLite file) into the PostgreSQL at to. */
static int migrate_one(const component_t *c, const char *path, const char *to, bool quiet)
{
    char err[2048];
    char from[4200];
    snprintf(from, sizeof from, "sqlite:%s", path);
    hx_db_t *src = hx_db_open(from, c->name, NULL, 0, err, sizeof err);
    if (!src) {
        fprintf(stderr, "handoff: admin migrate: %s\n", err);
        return EXIT_FAIL;
    }
    /* the source at this version's schema: what the target's steps make */
    bool sched = !strcmp(c->name, "scheduling"), accounts = !strcmp(c->name, "accounts");
    int64_t v = sched ? one_int(src, "PRAGMA user_version", NULL, err, sizeof err)
                      : one_int(src, "SELECT version FROM handoff_schema WHERE component = ?", c->name, err,
                                sizeof err);
    int64_t want = sched ? HX_BOOKING_SQLITE_VERSION
                   : accounts ? (int64_t)hx_accounts_n_steps
                              : (int64_t)hx_intake_n_steps;
    if (v >= 0 && sched && one_int(src, "SELECT count(*) FROM sqlite_master WHERE name = ?", "waitlist", err,
                                   sizeof err) != 1)
        v = want - 1;               /* version 4 from before the wait list */
    if (v != want) {
        fprintf(stderr, "handoff: admin migrate: %s is %s (version %lld; this handoff writes %lld): start "
                "handoff-%s of this version on it once, stop it, then migrate\n", path,
                v < 0 ? "not readable" : v < want ? "older than this handoff" : "newer than this handoff",
                (long long)v, (long long)want, accounts ? "web" : c->name);
        hx_db_close(&src);
        return EXIT_FAIL;
    }
    size_t n_steps;
    const hx_db_step_t *steps = sched      ? hx_booking_pg_steps(&n_steps)
                                : accounts ? hx_accounts_steps
                                           : hx_intake_steps;
    if (!sched)
        n_steps = accounts ? hx_accounts_n_steps : hx_intake_n_steps;
    hx_db_t *dst = hx_db_open(to, c->name, steps, n_steps, err, sizeof err);
    if (!dst) {
        fprintf(stderr, "handoff: admin migrate: %s\n", err);
        hx_db_close(&src);
        return EXIT_FAIL;
    }
    char tables[64][64];
    size_t n = 0;
    int rc = tables_of(src, tables, 64, &n, err, sizeof err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", tables[i]);
        int64_t there = one_int(dst, sql, NULL, err, sizeof err);
        if (there != 0) {
            if (there > 0)
                snprintf(err, sizeof err, "%s already holds %lld row(s) in %s.%s: migrate into an empty database "
                         "(or one without a %s schema)", hx_db_where(dst), (long long)there, c->name, tables[i],
                         c->name);
            rc = -1;
        }
    }
    /* a consistent view of the source, one transaction in the target: all of it or nothing */
    if (rc == 0 && hx_db_run(src, "BEGIN") != 0) {
        snprintf(err, sizeof err, "%s", hx_db_errmsg(src));
        rc = -1;
    }
    if (rc == 0 && hx_db_begin(dst, err, sizeof err) != 0)
        rc = -1;
    int64_t total = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t rows = 0;
        rc = copy_table(src, dst, c->name, tables[i], &rows, err, sizeof err);
        if (rc == 0)
            rc = identities_follow(dst, c->name, tables[i], err, sizeof err);
        total += rows;
        if (rc == 0 && !quiet)
            printf("  %s.%-16s %10lld row(s)\n", c->name, tables[i], (long long)rows);
    }
    if (rc == 0)
        rc = hx_db_commit(dst, err, sizeof err);
    else
        hx_db_rollback(dst);
    hx_db_run(src, "ROLLBACK");
    if (rc == 0 && !quiet)
        printf("%s: %lld row(s) from %s into %s (schema %s)\n", c->name, (long long)total, path, hx_db_where(dst),
               c->name);
    if (rc != 0)
        fprintf(stderr, "handoff: admin migrate: %s: %s; nothing of it was written\n", c->name, err);
    hx_db_close(&src);
    hx_db_close(&dst);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

int cmd_migrate(int argc, char **argv)
{
    enum { M_FROM = 1, M_TO, M_COMPONENT, M_QUIET, M_HELP };
    static const struct option opts[] = {{"from", required_argument, NULL, M_FROM},
                                         {"to", required_argument, NULL, M_TO},
                                         {"component", required_argument, NULL, M_COMPONENT},
                                         {"quiet", no_argument, NULL, M_QUIET},
                                         {"help", no_argument, NULL, M_HELP},
                                         {NULL, 0, NULL, 0}};
    const char *from = NULL, *to = NULL, *only = NULL;
    bool quiet = false;
    optind = 0;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case M_FROM: from = optarg; break;
        case M_TO: to = optarg; break;
        case M_COMPONENT: only = optarg; break;
        case M_QUIET: quiet = true; break;
        case 'h':
        case M_HELP: fputs(cli_command_help("admin"), stdout); return EXIT_OK;
        default: fprintf(stderr, "handoff: see handoff admin --help\n"); return EXIT_USAGE;
        }
    }
    if (!from || !to || optind != argc) {
        fprintf(stderr, "handoff: usage: handoff admin migrate --from sqlite:DIR|sqlite:FILE --to "
                        "postgresql://USER@HOST:PORT/DB [--component intake|scheduling|accounts]\n");
        return EXIT_USAGE;
    }
    hx_db_kind_t kind;
    const char *path, *rest;
    char why[512];
    if (hx_db_url_parse(from, &kind, &path, why, sizeof why) != 0 || kind != HX_DB_SQLITE) {
        fprintf(stderr, "handoff: admin migrate: --from: %s\n",
                kind != HX_DB_SQLITE && !why[0] ? "a SQLite store: sqlite:DIR (intake.db, scheduling.db, "
                                                 "web-accounts.db in it) or sqlite:FILE" : why);
        return EXIT_USAGE;
    }
    why[0] = '\0';
    if (hx_db_url_parse(to, &kind, &rest, why, sizeof why) != 0 || kind != HX_DB_POSTGRES) {
        fprintf(stderr, "handoff: admin migrate: --to: %s\n", why[0] ? why : "postgresql://USER@HOST:PORT/DB");
        return EXIT_USAGE;
    }
    const component_t *pick = NULL;
    for (size_t i = 0; only && i < sizeof components / sizeof *components; i++)
        if (!strcmp(only, components[i].name))
            pick = &components[i];
    if (only && !pick) {
        fprintf(stderr, "handoff: admin migrate: --component: '%s' is not intake, scheduling or accounts\n", only);
        return EXIT_USAGE;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "handoff: admin migrate: --from: %s: no such file or directory\n", path);
        return EXIT_FAIL;
    }
    if (!S_ISDIR(sb.st_mode)) {                 /* one file: its component by name or --component */
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        const component_t *by_name = strstr(base, "intake")       ? &components[0]
                                     : strstr(base, "scheduling") ? &components[1]
                                     : strstr(base, "accounts")   ? &components[2]
                                                                  : NULL;
        if (!pick)
            pick = by_name;
        if (!pick) {
            fprintf(stderr, "handoff: admin migrate: %s: whose store is it? say --component intake, scheduling or accounts\n",
                    path);
            return EXIT_USAGE;
        }
        return migrate_one(pick, path, to, quiet);
    }
    int rc = EXIT_OK, found = 0;
    for (size_t i = 0; i < sizeof components / sizeof *components && rc == EXIT_OK; i++) {
        if (pick && pick != &components[i])
            continue;
        char file[4200];
        snprintf(file, sizeof file, "%s/%s", path, components[i].file);
        if (stat(file, &sb) != 0) {
            if (!quiet)
                printf("%s: no %s in %s: skipped\n", components[i].name, components[i].file, path);
            continue;
        }
        found++;
        rc = migrate_one(&components[i], file, to, quiet);
    }
    if (rc == EXIT_OK && !found) {
        fprintf(stderr, "handoff: admin migrate: %s holds none of intake.db, scheduling.db, web-accounts.db\n", path);
        rc = EXIT_FAIL;
    }
    return rc;
}
