/* handoff — the clinic command line: submit and import referrals, the clinic's inbox grouped
 * by where each referral stands, the status of referrals it sent, a live feed of what
 * arrives (watch); for operators the broker's overview (top), dead letters and health.
 *
 * Messages fetched from the clinic's mailbox are written to a local SQLite file in one
 * transaction before they are acked, so each arrives exactly once at the clinic; the mailbox
 * is fetched until the broker hands out nothing more. A clinical type is stored only when its
 * broker-set sender is a service that issues it (hx_issuer.h); anything else is dropped: acked,
 * recorded without its payload, and named on stderr. The
 * operator commands (top, dlq, health) open no local store: a dead letter is shown by its
 * envelope and referral id only, never by the patient details in its payload.
 *
 * Settings come from flags, HANDOFF_* variables and an INI file (cli_config.h); tables,
 * times and help texts from cli_table, cli_fmt and cli_help; the pure parts of import, inbox
 * and top from cli_import, cli_inbox and cli_top. */
#include "cli_config.h"
#include "cli_fmt.h"
#include "cli_help.h"
#include "cli_import.h"
#include "cli_inbox.h"
#include "cli_progress.h"
#include "cli_table.h"
#include "cli_top.h"
#include "hx_audit.h"
#include "hx_client.h"
#include "hx_curve.h"
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_issuer.h"
#include "hx_refjson.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* 65 and 77 are sysexits.h's EX_DATAERR and EX_NOPERM. EXIT_DENIED: the broker answered, and
 * will not let this key in (not in its allow-list, CURVE on one side only, the wrong broker key,
 * or a session the key may not open): not "unreachable", which sends people to the network. */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
    EXIT_NOTFOUND = 4,
    EXIT_DATAERR = 65,
    EXIT_DENIED = 77,
};

/* The exit code for a failed request of the client library. */
static int exit_for(int hx_rc)
{
    return hx_rc == HX_ETIMEDOUT ? EXIT_UNREACHABLE : hx_rc == HX_EDENIED ? EXIT_DENIED : EXIT_FAIL;
}

typedef struct {
    cli_config_t cfg;
    char config_file[4200];             /* the config file read, "" when none */
    char flag_err[1024];                /* the first bad setting flag: reported by commands that use settings */
    const char *broker, *clinic, *home, *admin, *server_key, *key;
    const char *reason, *discipline, *dir, *format;
    char curve_server[41], curve_public[41], curve_secret[41];
    uint32_t timeout_ms, interval_ms, window;
    int json, no_validate, dry_run, once;
    int quiet_connect;                  /* watch: no message per failed reconnect */
    char connect_err[512];              /* why the last connection failed */
    size_t dropped;                     /* messages dropped by this run's mailbox syncs */
    hx_client_t *client;
    sqlite3 *db;
} cli_t;

/* Set by SIGINT/SIGTERM while watch or top runs: the one thing a signal handler may touch. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGINT and SIGTERM end watch and top cleanly (no SA_RESTART: a sleep is cut short). */
static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Sleeps ms (in slices, so a stop request is seen within 50 ms). */
static void nap_ms(uint32_t ms)
{
    while (ms && !stop_requested) {
        uint32_t slice = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

/* ---- local store ---------------------------------------------------------------------- */

static int db_open(cli_t *c)
{
    char dir[4096], path[4200];
    const char *home = c->home;
    if (!home) {
        const char *h = getenv("HOME");
        snprintf(dir, sizeof dir, "%s/.handoff", h && *h ? h : ".");
        home = dir;
    } else {
        snprintf(dir, sizeof dir, "%s", home);
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "handoff: --home %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s.db", dir, c->clinic);
    mode_t old = umask(077);
    int rc = sqlite3_open(path, &c->db);
    umask(old);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "handoff: %s: %s\n", path, sqlite3_errmsg(c->db));
        return -1;
    }
    sqlite3_busy_timeout(c->db, 5000);
    /* Another handoff of this clinic (a watch, say) may be opening the same store right now:
     * the schema and its upgrade are made in one write transaction, so one of them does it
     * and the other finds it done. */
    const char *schema =
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS received ("
        "  id BLOB PRIMARY KEY, type TEXT NOT NULL, referral_id TEXT NOT NULL,"
        "  from_name TEXT NOT NULL, at_ms INTEGER NOT NULL, payload BLOB NOT NULL);"
        "CREATE INDEX IF NOT EXISTS received_referral ON received(referral_id, at_ms);"
        "CREATE TABLE IF NOT EXISTS sent ("
        "  referral_id TEXT PRIMARY KEY, ref TEXT NOT NULL, file TEXT NOT NULL, at_ms INTEGER NOT NULL,"
        "  patient TEXT NOT NULL DEFAULT '');"
        /* what was dropped instead of stored (hx_issuer.h): who sent which type, and why;
         * never the payload, which nobody here may trust */
        "CREATE TABLE IF NOT EXISTS dropped ("
        "  id BLOB PRIMARY KEY, type TEXT NOT NULL, sender TEXT NOT NULL, at_ms INTEGER NOT NULL,"
        "  why TEXT NOT NULL);";
    char *err = NULL;
    if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(c->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "handoff: %s: %s\n", path, err);
        sqlite3_free(err);
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    /* stores made before the inbox showed the patients of sent referrals lack this column */
    sqlite3_stmt *probe = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT patient FROM sent LIMIT 0", -1, &probe, NULL) != SQLITE_OK &&
        sqlite3_exec(c->db, "ALTER TABLE sent ADD COLUMN patient TEXT NOT NULL DEFAULT ''", NULL, NULL, &err) !=
            SQLITE_OK) {
        fprintf(stderr, "handoff: %s: %s\n", path, err);
        sqlite3_free(err);
        sqlite3_finalize(probe);
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    sqlite3_finalize(probe);
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "handoff: %s: %s\n", path, err);
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

/* Opens the session: EXIT_OK, or the exit code for why not (EXIT_UNREACHABLE, EXIT_DENIED,
 * EXIT_USAGE for a bad endpoint, EXIT_FAIL), the reason on stderr. */
static int connect_as(cli_t *c, hx_role_t role, const char *name)
{
    char err[512];
    hx_client_opts_t o = {.endpoint = c->broker, .clinic = name, .role = role, .timeout_ms = (int)c->timeout_ms};
    if (c->curve_server[0]) {
        o.curve_server_key = c->curve_server;
        o.curve_public = c->curve_public;
        o.curve_secret = c->curve_secret;
    }
    int rc = hx_client_open(&o, &c->client, err, sizeof err);
    snprintf(c->connect_err, sizeof c->connect_err, "%s", rc ? err : "");
    if (rc) {
        if (!c->quiet_connect)
            fprintf(stderr, "handoff: %s\n", err);
        return rc == HX_EINVAL ? EXIT_USAGE : exit_for(rc);
    }
    return EXIT_OK;
}

static int connect_broker(cli_t *c)
{
    return connect_as(c, HX_ROLE_CLINIC, c->clinic);
}

/* Called for each message stored for the first time, after it is committed and acked. */
typedef void (*on_new_fn)(cli_t *c, const hx_msg_t *m, const char *type, uint64_t at_ms);

/* text with every byte that is not printable ASCII as '?': what an untrusted sender named
 * (a message type) is printed, never its control characters. */
static const char *printable(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    for (; text && text[n] && n + 1 < cap; n++)
        out[n] = text[n] >= 0x20 && text[n] < 0x7f ? text[n] : '?';
    out[n] = '\0';
    return out;
}

/* How a message received is stored: its type (a refused StatusUpdate is an answer to this
 * clinic, not a change, and is kept apart as handoff.Refusal), the referral it is about ("" when
 * the payload does not say) and when it happened. */
static void received_facts(const hx_msg_t *m, const char **type, char *referral_id, size_t cap, uint64_t *at)
{
    *type = m->type;
    *at = m->accepted_at_ms;
    referral_id[0] = '\0';
    if (strcmp(m->type, "handoff.Handoff") == 0) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload_len, m->payload);
        if (h) {
            snprintf(referral_id, cap, "%s", h->referral_id);
            handoff__handoff__free_unpacked(h, NULL);
        }
    } else if (strcmp(m->type, "handoff.StatusUpdate") == 0) {
        Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
        if (s) {
            snprintf(referral_id, cap, "%s", s->referral_id);
            if (s->at_ms)
                *at = s->at_ms;
            if (s->refused)
                *type = "handoff.Refusal";
            handoff__status_update__free_unpacked(s, NULL);
        }
    }
}

/* "service:scheduling" / "mailbox:lakeside": the broker-set sender of m. */
static void sender_text(const hx_msg_t *m, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%s", m->from_kind == HX_TO_SERVICE ? "service" : "mailbox", m->from ? m->from : "");
}

/* Moves everything waiting in the mailbox into the local store: stored first, then acked;
 * fetched until the broker hands out nothing more (a FETCH reply is bounded by the broker's
 * max_frame, not only by the count asked for). A message whose sender does not issue its type
 * (hx_issuer.h) is not stored as clinical data: it is recorded in `dropped`, acked, named on
 * stderr and counted in c->dropped. When watch is set and a trusted message answering it (its
 * correlation id) arrives, its payload is copied to *answer (malloc'd, *answer_len bytes).
 * on_new (may be NULL) sees each message the store did not have before. */
static int sync_mailbox_full(cli_t *c, const uint8_t *watch, uint8_t **answer, size_t *answer_len, on_new_fn on_new)
{
    int crc;
    if (!c->client && (crc = connect_broker(c)))
        return crc;
    sqlite3_stmt *ins = NULL, *drop = NULL;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT OR IGNORE INTO received(id, type, referral_id, from_name, at_ms, payload) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO dropped(id, type, sender, at_ms, why) VALUES (?, ?, ?, ?, ?)",
                           -1, &drop, NULL) != SQLITE_OK) {
        fprintf(stderr, "handoff: cannot store received messages: %s\n", sqlite3_errmsg(c->db));
        sqlite3_finalize(ins);
        return EXIT_FAIL;
    }
    int rc = EXIT_OK;
    for (;;) {
        hx_batch_t *b = NULL;
        int frc = hx_client_fetch(c->client, 100, &b);
        if (frc) {
            fprintf(stderr, "handoff: fetching the mailbox: %s%s%s\n", hx_strerror(frc),
                    hx_client_error(c->client)[0] ? ": " : "", hx_client_error(c->client));
            rc = exit_for(frc);
            break;
        }
        if (b->count == 0) {                    /* the broker says the mailbox is empty */
            hx_batch_destroy(&b);
            break;
        }
        uint8_t (*ids)[HX_ID_LEN] = calloc(b->count, HX_ID_LEN);
        const char **types = calloc(b->count, sizeof *types);    /* stored for the first time */
        uint64_t *ats = calloc(b->count, sizeof *ats);
        bool *dropped = calloc(b->count, sizeof *dropped);        /* dropped for the first time */
        sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        int ok = ids && types && ats && dropped;
        for (size_t i = 0; i < b->count && ok; i++) {
            const hx_msg_t *m = &b->msgs[i];
            memcpy(ids[i], m->id, HX_ID_LEN);
            char why[512], sender[HX_NAME_MAX + 16];
            sender_text(m, sender, sizeof sender);
            if (hx_issuer_check(m->type, m->from_kind == HX_TO_SERVICE, m->from, why, sizeof why) != 0) {
                sqlite3_reset(drop);
                sqlite3_bind_blob(drop, 1, m->id, HX_ID_LEN, SQLITE_STATIC);
                sqlite3_bind_text(drop, 2, m->type, -1, SQLITE_STATIC);
                sqlite3_bind_text(drop, 3, sender, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(drop, 4, (sqlite3_int64)m->accepted_at_ms);
                sqlite3_bind_text(drop, 5, why, -1, SQLITE_TRANSIENT);
                ok = sqlite3_step(drop) == SQLITE_DONE;
                dropped[i] = ok && sqlite3_changes(c->db) == 1;
                continue;                       /* never clinical data, never an answer */
            }
            char referral_id[64];
            const char *type;
            uint64_t at;
            received_facts(m, &type, referral_id, sizeof referral_id, &at);
            sqlite3_reset(ins);
            sqlite3_bind_blob(ins, 1, m->id, HX_ID_LEN, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, type, -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 3, referral_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 4, m->from, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 5, (sqlite3_int64)at);
            sqlite3_bind_blob(ins, 6, m->payload, (int)m->payload_len, SQLITE_STATIC);
            ok = sqlite3_step(ins) == SQLITE_DONE;
            if (ok && sqlite3_changes(c->db) == 1) {
                types[i] = type;
                ats[i] = at;
            }
            if (watch && answer && !*answer && m->correlation_id && memcmp(m->correlation_id, watch, HX_ID_LEN) == 0 &&
                (*answer = malloc(m->payload_len ? m->payload_len : 1))) {
                memcpy(*answer, m->payload, m->payload_len);
                *answer_len = m->payload_len;
            }
        }
        ok = ok && sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        if (!ok) {
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            fprintf(stderr, "handoff: cannot store received messages: %s\n", sqlite3_errmsg(c->db));
            rc = EXIT_FAIL;
        } else if (hx_client_ack(c->client, (const uint8_t(*)[HX_ID_LEN])ids, b->count) != 0) {
            fprintf(stderr, "handoff: ack refused: %s\n", hx_client_error(c->client));
            rc = EXIT_FAIL;                     /* stored: they will come again and be ignored */
        }
        for (size_t i = 0; ok && i < b->count; i++) {
            const hx_msg_t *m = &b->msgs[i];
            if (dropped[i]) {
                char hex[2 * HX_ID_LEN + 1], type[HX_TYPE_MAX + 1], sender[HX_NAME_MAX + 16], why[512], shown[512];
                hx_id_hex(m->id, hex);
                sender_text(m, sender, sizeof sender);
                hx_issuer_check(m->type, m->from_kind == HX_TO_SERVICE, m->from, why, sizeof why);
                fprintf(stderr, "handoff: dropped %s %s from %s: %s\n", printable(m->type, type, sizeof type), hex,
                        sender, printable(why, shown, sizeof shown));
                c->dropped++;
            } else if (on_new && types[i]) {
                on_new(c, m, types[i], ats[i]);
            }
        }
        free(ids);
        free(types);
        free(ats);
        free(dropped);
        hx_batch_destroy(&b);
        if (rc != EXIT_OK || stop_requested)
            break;
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(drop);
    return rc;
}

static int sync_mailbox_watch(cli_t *c, const uint8_t *watch, uint8_t **answer, size_t *answer_len)
{
    return sync_mailbox_full(c, watch, answer, answer_len, NULL);
}

static int sync_mailbox(cli_t *c)
{
    return sync_mailbox_full(c, NULL, NULL, NULL, NULL);
}

/* ---- output helpers --------------------------------------------------------------------- */

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(j);
}

/* One compact JSON object on one line (watch --json), flushed. */
static void print_json_line(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(j);
    fflush(stdout);
}

static json_t *ms_json(uint64_t ms)
{
    return json_integer((json_int_t)(ms > INT64_MAX ? INT64_MAX : ms));
}

static int broker_failure(cli_t *c, const char *what, int rc);

/* ---- submit ----------------------------------------------------------------------------- */

static int load_referral(const cli_t *c, const char *file, Handoff__Referral **out)
{
    json_error_t jerr;
    json_t *j = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        fprintf(stderr, "%s: line %d, column %d: %s\n", file, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = cli_referral_check(j, c->no_validate, &errs);
    json_decref(j);
    if (!r) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s: %s: %s\n", file, errs.items[i].path, errs.items[i].why);
        if (errs.dropped)
            fprintf(stderr, "%s: and %zu more\n", file, errs.dropped);
        return -1;
    }
    *out = r;
    return 0;
}

/* The patient's name as staff read it ("" when the referral has none). */
static void patient_name(const Handoff__Referral *r, char *out, size_t cap)
{
    const Handoff__Patient *p = r ? r->patient : NULL;
    snprintf(out, cap, "%s%s%s", p ? p->given_name : "", p && p->given_name[0] && p->family_name[0] ? " " : "",
             p ? p->family_name : "");
}

/* Remembers a referral the broker accepted (for status, inbox and import's resumption). */
static void record_sent(cli_t *c, const char *rid, const Handoff__Referral *r, const char *file)
{
    sqlite3_stmt *st;
    char patient[160];
    patient_name(r, patient, sizeof patient);
    if (sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO sent(referral_id, ref, file, at_ms, patient) "
                                  "VALUES (?,?,?,?,?)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->ref, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, file, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)cli_now_ms());
        sqlite3_bind_text(st, 5, patient, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
}

/* A referral as the message submit and import send: its id from this clinic and its ref. */
static uint8_t *referral_msg(const cli_t *c, const Handoff__Referral *r, hx_msg_t *m, char rid[HX_REFERRAL_ID_LEN + 1])
{
    memset(m, 0, sizeof *m);
    hx_submission_id(c->clinic, r->ref, m->id);
    hx_referral_id(m->id, rid);
    size_t len = handoff__referral__get_packed_size(r);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    handoff__referral__pack(r, buf);
    m->to_kind = HX_TO_SERVICE;
    m->to = "intake";
    m->type = "handoff.Referral";
    m->payload = buf;
    m->payload_len = len;
    /* the broker hands urgent work out first (routine 0 .. stat 3; referral.proto counts from
     * PRIORITY_ROUTINE = 1, with 0 unspecified) */
    m->priority = r->priority > HANDOFF__PRIORITY__PRIORITY_ROUTINE ? (uint32_t)r->priority - 1 : 0;
    return buf;
}

static int cmd_submit(cli_t *c, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "handoff: submit needs at least one FILE.json (see handoff help submit)\n");
        return EXIT_USAGE;
    }
    int rc = EXIT_OK;
    json_t *results = json_array();
    for (int i = 0; i < argc; i++) {
        Handoff__Referral *r = NULL;
        if (load_referral(c, argv[i], &r)) {
            rc = EXIT_DATAERR;
            continue;
        }
        int crc;
        if (!c->client && (crc = connect_broker(c))) {
            hx_referral_free(r);
            rc = crc;
            break;
        }
        hx_msg_t m;
        char rid[HX_REFERRAL_ID_LEN + 1];
        uint8_t *buf = referral_msg(c, r, &m, rid);
        if (!buf) {
            hx_referral_free(r);
            rc = EXIT_FAIL;
            break;
        }
        int src = hx_client_submit(c->client, &m, 1);
        free(buf);
        if (src) {
            fprintf(stderr, "%s: not accepted: %s%s%s\n", argv[i], hx_strerror(src),
                    hx_client_error(c->client)[0] ? ": " : "", hx_client_error(c->client));
            rc = exit_for(src);
            hx_referral_free(r);
            continue;
        }
        record_sent(c, rid, r, argv[i]);
        if (c->json)
            json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "referral_id", rid, "ref", r->ref, "file",
                                                     argv[i]));
        else
            printf("%s  accepted  %s (ref %s)\n", rid, argv[i], r->ref);
        hx_referral_free(r);
    }
    if (c->json)
        print_json(results);
    else
        json_decref(results);
    return rc;
}

/* ---- import ----------------------------------------------------------------------------- */

typedef enum { ROW_BAD, ROW_TO_SEND, ROW_ALREADY, ROW_SUBMITTED, ROW_REFUSED } row_state_t;

typedef struct {
    row_state_t state;
    Handoff__Referral *r;
    char rid[HX_REFERRAL_ID_LEN + 1];
} import_row_t;

static const char *row_result(row_state_t s, int dry_run)
{
    switch (s) {
    case ROW_TO_SEND: return dry_run ? "would_submit" : "not_sent";
    case ROW_ALREADY: return "already_accepted";
    case ROW_SUBMITTED: return "submitted";
    default: return "failed";
    }
}

static bool sent_before(cli_t *c, const char *rid)
{
    sqlite3_stmt *st;
    bool found = false;
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM sent WHERE referral_id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    return found;
}

/* Sends the rows in todo (indexes into rows) with up to c->window in flight, in chunks so
 * that progress can be drawn; records each accepted one. Returns EXIT_OK, or
 * EXIT_UNREACHABLE when the broker stopped answering, EXIT_DENIED when a new connection's key
 * was refused (the rest stay ROW_TO_SEND). */
static int import_send(cli_t *c, const char *file, cli_rows_t *rows, import_row_t *st, size_t *todo, size_t n_todo)
{
    size_t chunk = 4 * (size_t)c->window;
    if (chunk < 64)
        chunk = 64;
    if (chunk > HX_MAX_BATCH)
        chunk = HX_MAX_BATCH;
    hx_msg_t *msgs = calloc(chunk, sizeof *msgs);
    uint8_t **bufs = calloc(chunk, sizeof *bufs);
    size_t *idx = calloc(chunk, sizeof *idx);
    if (!msgs || !bufs || !idx) {
        free(msgs), free(bufs), free(idx);
        fprintf(stderr, "handoff: import: out of memory\n");
        return EXIT_FAIL;
    }
    cli_progress_t p;
    cli_progress_start(&p, stderr, isatty(STDERR_FILENO), "import", n_todo, cli_now_ms());
    int rc = EXIT_OK;
    size_t done = 0;
    for (size_t off = 0; off < n_todo && rc == EXIT_OK; off += chunk) {
        size_t n = n_todo - off < chunk ? n_todo - off : chunk;
        for (size_t k = 0; k < n; k++) {
            idx[k] = todo[off + k];
            char rid[HX_REFERRAL_ID_LEN + 1];
            bufs[k] = referral_msg(c, st[idx[k]].r, &msgs[k], rid);
            if (!bufs[k]) {
                rc = EXIT_FAIL;
                n = k;
                break;
            }
        }
        size_t left = n;                        /* msgs[0..left) are still to be accepted */
        while (left > 0) {
            size_t failed = 0;
            int src = hx_client_submit_many(c->client, msgs, left, c->window, &failed);
            if (src == 0) {
                for (size_t k = 0; k < left; k++)
                    st[idx[k]].state = ROW_SUBMITTED;
                break;
            }
            if (src != HX_EREFUSED || failed >= left) {
                fprintf(stderr, "handoff: import: %s%s%s\n", hx_strerror(src),
                        hx_client_error(c->client)[0] ? ": " : "", hx_client_error(c->client));
                rc = exit_for(src);
                break;
            }
            /* that one was refused; the others may or may not be in: send them again (same
             * ids, so the broker keeps one copy) */
            cli_row_t *row = &rows->rows[idx[failed]];
            cli_row_error(row, "row", "the broker refused it: %s", hx_client_error(c->client));
            st[idx[failed]].state = ROW_REFUSED;
            msgs[failed] = msgs[left - 1];
            uint8_t *tb = bufs[failed];
            bufs[failed] = bufs[left - 1];
            bufs[left - 1] = tb;
            idx[failed] = idx[left - 1];
            left--;
        }
        sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
        for (size_t k = 0; k < n; k++) {
            if (st[idx[k]].state == ROW_SUBMITTED) {
                char where[4300];
                snprintf(where, sizeof where, "%s:%zu", file, rows->rows[idx[k]].line);
                record_sent(c, st[idx[k]].rid, st[idx[k]].r, where);
                done++;
            } else if (st[idx[k]].state == ROW_REFUSED) {
                done++;
            }
        }
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        for (size_t k = 0; k < n; k++)
            free(bufs[k]);
        cli_progress_update(&p, done, cli_now_ms());
    }
    cli_progress_finish(&p, cli_now_ms());
    free(msgs);
    free(bufs);
    free(idx);
    return rc;
}

static void import_summary(cli_t *c, const char *file, cli_rows_t *rows, import_row_t *st, int unreachable)
{
    size_t count[5] = {0};
    for (size_t i = 0; i < rows->n; i++)
        count[st[i].state]++;
    size_t failed = count[ROW_BAD] + count[ROW_REFUSED];
    const char *format = rows->format == CLI_FORMAT_CSV ? "csv" : "ndjson";
    if (c->json) {
        json_t *refs = json_array(), *errs = json_array();
        for (size_t i = 0; i < rows->n; i++) {
            cli_row_t *r = &rows->rows[i];
            if (st[i].state != ROW_BAD)
                json_array_append_new(refs, json_pack("{s:I, s:s, s:s, s:s}", "line", (json_int_t)r->line, "ref",
                                                      r->ref, "referral_id", st[i].rid, "result",
                                                      row_result(st[i].state, c->dry_run)));
            for (size_t k = 0; k < r->n_errs; k++)
                json_array_append_new(errs, json_pack("{s:I, s:s, s:s, s:s}", "line", (json_int_t)r->line, "ref",
                                                      r->ref, "field", r->errs[k].field, "reason", r->errs[k].why));
        }
        print_json(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o}", "file", file, "format", format,
                             "rows", (json_int_t)rows->n, "submitted", (json_int_t)count[ROW_SUBMITTED],
                             "already_accepted", (json_int_t)count[ROW_ALREADY], "failed", (json_int_t)failed,
                             "not_sent", (json_int_t)(c->dry_run ? 0 : count[ROW_TO_SEND]), "dry_run", c->dry_run,
                             "referrals", refs, "errors", errs));
        return;
    }
    printf("import %s (%s): %zu row(s)\n", file, format, rows->n);
    if (c->dry_run)
        printf("  would submit      %zu\n", count[ROW_TO_SEND]);
    else
        printf("  submitted         %zu\n", count[ROW_SUBMITTED]);
    printf("  already accepted  %zu%s\n", count[ROW_ALREADY],
           count[ROW_ALREADY] ? "  (by an earlier import or submit; not sent again)" : "");
    printf("  failed            %zu\n", failed);
    if (!c->dry_run && count[ROW_TO_SEND])
        printf("  not sent          %zu  (%s; run the same import again to send the rest)\n", count[ROW_TO_SEND],
               unreachable ? "the broker stopped answering" : "stopped early");
    if (!failed)
        return;
    static const char *const head[] = {"LINE", "REF", "FIELD", "WHY"};
    cli_table_t *t = cli_table_new(4, head, "rlll");
    for (size_t i = 0; t && i < rows->n; i++) {
        cli_row_t *r = &rows->rows[i];
        for (size_t k = 0; k < r->n_errs; k++) {
            char line[24];
            snprintf(line, sizeof line, "%zu", r->line);
            const char *row[] = {line, r->ref[0] ? r->ref : "-", r->errs[k].field, r->errs[k].why};
            cli_table_add(t, row);
        }
    }
    if (t) {
        printf("\nfailed rows:\n");
        cli_table_print(t, stdout);
        cli_table_destroy(&t);
    }
}

static int cmd_import(cli_t *c, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "handoff: import takes one FILE (.csv, .ndjson or .jsonl; see handoff help import)\n");
        return EXIT_USAGE;
    }
    const char *file = argv[0];
    char err[2048];
    cli_format_t format;
    if (cli_import_format(file, c->format, &format, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: import: %s\n", err);
        return EXIT_USAGE;
    }
    cli_rows_t rows;
    if (cli_import_read(file, format, &rows, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: import: %s\n", err);
        return errno == ENOENT || errno == EACCES ? EXIT_DATAERR : EXIT_DATAERR;
    }
    import_row_t *st = calloc(rows.n ? rows.n : 1, sizeof *st);
    size_t *todo = calloc(rows.n ? rows.n : 1, sizeof *todo);
    if (!st || !todo) {
        free(st), free(todo);
        cli_rows_free(&rows);
        fprintf(stderr, "handoff: import: out of memory\n");
        return EXIT_FAIL;
    }
    size_t n_todo = 0;
    for (size_t i = 0; i < rows.n; i++) {
        cli_row_t *row = &rows.rows[i];
        st[i].state = ROW_BAD;
        if (!row->json)
            continue;                               /* already carries why */
        hx_errors_t errs;
        hx_errors_clear(&errs);
        Handoff__Referral *r = cli_referral_check(row->json, c->no_validate, &errs);
        if (r && !r->ref[0])
            hx_errors_add(&errs, "ref", "required: this clinic's own number for the referral");
        for (size_t k = 0; k < errs.count; k++)
            cli_row_error(row, errs.items[k].path, "%s", errs.items[k].why);
        if (errs.dropped)
            cli_row_error(row, "row", "and %zu more problems", errs.dropped);
        if (row->n_errs) {                      /* also a cell the CSV reader could not use */
            hx_referral_free(r);
            continue;
        }
        for (size_t j = 0; j < i; j++)          /* the same ref twice is the same referral */
            if (st[j].r && strcmp(st[j].r->ref, r->ref) == 0) {
                cli_row_error(row, "ref", "'%s' is also on line %zu: one row per referral", r->ref,
                              rows.rows[j].line);
                hx_referral_free(r);
                r = NULL;
                break;
            }
        if (!r)
            continue;
        st[i].r = r;
        uint8_t id[HX_ID_LEN];
        hx_submission_id(c->clinic, r->ref, id);
        hx_referral_id(id, st[i].rid);
        if (sent_before(c, st[i].rid)) {
            st[i].state = ROW_ALREADY;
        } else {
            st[i].state = ROW_TO_SEND;
            todo[n_todo++] = i;
        }
    }
    int rc = EXIT_OK;
    if (!c->dry_run && n_todo > 0) {
        if (c->client || (rc = connect_broker(c)) == EXIT_OK)
            rc = import_send(c, file, &rows, st, todo, n_todo);
    }
    import_summary(c, file, &rows, st, rc == EXIT_UNREACHABLE);
    bool bad = false, refused = false;
    for (size_t i = 0; i < rows.n; i++) {
        bad |= st[i].state == ROW_BAD;
        refused |= st[i].state == ROW_REFUSED;
        hx_referral_free(st[i].r);
    }
    free(st);
    free(todo);
    cli_rows_free(&rows);
    if (rc == EXIT_UNREACHABLE || rc == EXIT_DENIED || rc == EXIT_USAGE)
        return rc;
    if (bad)
        return EXIT_DATAERR;
    return refused ? EXIT_FAIL : rc;
}

/* ---- inbox, handoffs, status ----------------------------------------------------------- */

static int cmd_inbox(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: inbox takes no arguments (see handoff help inbox)\n");
        return EXIT_USAGE;
    }
    int rc = sync_mailbox(c);
    if (rc != EXIT_OK)
        return rc;
    cli_inbox_t *in = cli_inbox_new(c->clinic);
    if (!in)
        return EXIT_FAIL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT referral_id, ref, patient, at_ms FROM sent ORDER BY at_ms, rowid", -1, &st,
                           NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW)
            cli_inbox_add_sent(in, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
                               (const char *)sqlite3_column_text(st, 2), (uint64_t)sqlite3_column_int64(st, 3));
        sqlite3_finalize(st);
    }
    if (sqlite3_prepare_v2(c->db, "SELECT type, payload, at_ms FROM received WHERE type IN ('handoff.Handoff', "
                                  "'handoff.StatusUpdate') ORDER BY at_ms, rowid", -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *type = (const char *)sqlite3_column_text(st, 0);
            size_t len = (size_t)sqlite3_column_bytes(st, 1);
            const uint8_t *data = sqlite3_column_blob(st, 1);
            uint64_t at = (uint64_t)sqlite3_column_int64(st, 2);
            if (strcmp(type, "handoff.Handoff") == 0) {
                Handoff__Handoff *h = handoff__handoff__unpack(NULL, len, data);
                if (h)
                    cli_inbox_add_handoff(in, h, at);
                handoff__handoff__free_unpacked(h, NULL);
            } else {
                Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, data);
                if (s)
                    cli_inbox_add_status(in, s, at);
                handoff__status_update__free_unpacked(s, NULL);
            }
        }
        sqlite3_finalize(st);
    }
    if (c->json) {
        print_json(cli_inbox_json(in));
    } else {
        cli_inbox_print(in, stdout, cli_now_ms());
        if (c->dropped)                 /* each is named on stderr */
            printf("\n%zu message%s dropped: not from %s issuing service\n", c->dropped, c->dropped == 1 ? "" : "s",
                   c->dropped == 1 ? "its" : "their");
    }
    cli_inbox_destroy(&in);
    return EXIT_OK;
}

/* Every handoff received, oldest first (the table, or the handoffs as a JSON array). */
static int cmd_handoffs(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: handoffs takes no arguments\n");
        return EXIT_USAGE;
    }
    int rc = sync_mailbox(c);
    if (rc != EXIT_OK)
        return rc;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT payload, at_ms FROM received WHERE type = 'handoff.Handoff' "
                                  "ORDER BY at_ms, rowid", -1, &st, NULL) != SQLITE_OK)
        return EXIT_FAIL;
    json_t *all = json_array();
    static const char *const head[] = {"REFERRAL", "PATIENT", "BORN", "DISCIPLINE", "THERAPIST", "START", "MIN",
                                       "FROM", "RECEIVED"};
    cli_table_t *t = cli_table_new(9, head, "llllllrll");
    if (t)
        cli_table_cap(t, 1, 28);
    uint64_t now = cli_now_ms();
    while (sqlite3_step(st) == SQLITE_ROW) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, (size_t)sqlite3_column_bytes(st, 0),
                                                       sqlite3_column_blob(st, 0));
        if (!h)
            continue;
        if (c->json) {
            json_array_append_new(all, hx_handoff_to_json(h));
        } else if (t) {
            const Handoff__Booking *b = h->booking;
            char name[160], minutes[16], start[CLI_FMT_LEN], when[CLI_FMT_LEN];
            patient_name(h->referral, name, sizeof name);
            snprintf(minutes, sizeof minutes, "%u", b ? b->minutes : 0);
            const Handoff__Patient *p = h->referral ? h->referral->patient : NULL;
            const char *row[] = {h->referral_id, name, p ? p->birth_date : "",
                                 b ? hx_discipline_text(b->discipline) : "", b ? b->therapist_name : "",
                                 cli_slot_text(b ? b->start : "", start), minutes,
                                 h->referral ? h->referral->referring_clinic : "",
                                 cli_time_ago(now, (uint64_t)sqlite3_column_int64(st, 1), when)};
            cli_table_add(t, row);
        }
        handoff__handoff__free_unpacked(h, NULL);
    }
    sqlite3_finalize(st);
    if (c->json) {
        print_json(all);
    } else {
        json_decref(all);
        if (t && cli_table_rows(t))
            cli_table_print(t, stdout);
        printf("%zu handoff(s) received by %s\n", t ? cli_table_rows(t) : 0, c->clinic);
    }
    cli_table_destroy(&t);
    return EXIT_OK;
}

static int cmd_status(cli_t *c, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "handoff: status takes at most one referral id\n");
        return EXIT_USAGE;
    }
    int rc = sync_mailbox(c);
    if (rc != EXIT_OK)
        return rc;
    const char *id = argc ? argv[0] : NULL;
    sqlite3_stmt *st;
    if (id)
        sqlite3_prepare_v2(c->db, "SELECT payload FROM received WHERE type = 'handoff.StatusUpdate' "
                                  "AND referral_id = ? ORDER BY at_ms, rowid", -1, &st, NULL);
    else    /* the latest update of each referral */
        sqlite3_prepare_v2(c->db, "SELECT payload FROM received r WHERE type = 'handoff.StatusUpdate' AND rowid = "
                                  "(SELECT rowid FROM received x WHERE x.type = r.type AND x.referral_id = r.referral_id "
                                  "ORDER BY at_ms DESC, rowid DESC LIMIT 1) ORDER BY at_ms, rowid", -1, &st, NULL);
    if (id)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    json_t *all = json_array();
    size_t n = 0;
    static const char *const hist[] = {"TIME", "STATUS", "EVENT", "BY", "DETAIL"};
    static const char *const list[] = {"REFERRAL", "REF", "STATUS", "UPDATED", "DETAIL"};
    cli_table_t *t = id ? cli_table_new(5, hist, NULL) : cli_table_new(5, list, NULL);
    uint64_t now = cli_now_ms();
    while (sqlite3_step(st) == SQLITE_ROW) {
        Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, (size_t)sqlite3_column_bytes(st, 0),
                                                                  sqlite3_column_blob(st, 0));
        if (!s)
            continue;
        n++;
        char when[CLI_FMT_LEN];
        if (c->json) {
            json_array_append_new(all, hx_status_to_json(s));
        } else if (t && id) {
            const char *row[] = {cli_time_abs(s->at_ms, when), hx_status_text(s->status), s->event, s->by, s->reason};
            cli_table_add(t, row);
        } else if (t) {
            const char *row[] = {s->referral_id, s->ref, hx_status_text(s->status), cli_time_ago(now, s->at_ms, when),
                                 s->reason};
            cli_table_add(t, row);
        }
        handoff__status_update__free_unpacked(s, NULL);
    }
    sqlite3_finalize(st);
    if (c->json) {
        if (id)
            print_json(json_pack("{s:s, s:o}", "referral_id", id, "history", all));
        else
            print_json(all);
    } else {
        json_decref(all);
        if (t && n)
            cli_table_print(t, stdout);
        if (!id)
            printf("%zu referral(s) with a status at %s\n", n, c->clinic);
    }
    cli_table_destroy(&t);
    if (id && n == 0) {
        fprintf(stderr, "handoff: no status received for %s at clinic %s\n", id, c->clinic);
        return EXIT_NOTFOUND;
    }
    return EXIT_OK;
}

/* ---- watch ------------------------------------------------------------------------------ */

static void watch_print(cli_t *c, const hx_msg_t *m, const char *type, uint64_t at_ms)
{
    char when[CLI_FMT_LEN], start[CLI_FMT_LEN], text[900];
    cli_time_abs(at_ms, when);
    if (strcmp(type, "handoff.Handoff") == 0) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload_len, m->payload);
        if (!h)
            return;
        char name[160];
        patient_name(h->referral, name, sizeof name);
        const Handoff__Booking *b = h->booking;
        snprintf(text, sizeof text, "%s: %s with %s, %s, %u min (from %s)", name[0] ? name : "?",
                 b ? hx_discipline_text(b->discipline) : "?", b ? b->therapist_name : "?",
                 cli_slot_text(b ? b->start : "", start), b ? b->minutes : 0,
                 h->referral ? h->referral->referring_clinic : "?");
        if (c->json) {
            json_t *o = json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "at_ms", ms_json(at_ms), "at", when,
                                  "kind", "handoff", "referral_id", h->referral_id, "ref",
                                  h->referral ? h->referral->ref : "", "status", "ready", "group", "new", "text", text);
            json_object_set_new(o, "handoff", hx_handoff_to_json(h));
            print_json_line(o);
        } else {
            printf("%s  %-10s  %s  %s\n", when, "NEW", h->referral_id, text);
            fflush(stdout);
        }
        handoff__handoff__free_unpacked(h, NULL);
        return;
    }
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
    if (!s)
        return;
    bool received = false;                  /* about a booking this clinic holds, not its own referral */
    for (size_t i = 0; i < s->n_bookings; i++)
        received |= s->bookings[i] && strcmp(s->bookings[i]->clinic_id, c->clinic) == 0;
    received = received && strcmp(s->event, "book") != 0;
    const char *status = s->refused ? "refused" : cli_inbox_status_text(s->status, s->event);
    snprintf(text, sizeof text, "%s%s%s", s->ref[0] ? s->ref : "", s->ref[0] ? ": " : "", s->reason);
    if (c->json) {
        json_t *o = json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "at_ms", ms_json(at_ms), "at", when, "kind",
                              s->refused ? "refusal" : "status", "referral_id", s->referral_id, "ref", s->ref,
                              "status", status, "group",
                              s->refused ? "" : cli_group_key(cli_inbox_group(received, s->status, s->event)), "text",
                              text);
        json_object_set_new(o, "update", hx_status_to_json(s));
        print_json_line(o);
    } else {
        printf("%s  %-10s  %s  %s\n", when, status, s->referral_id, text);
        fflush(stdout);
    }
    handoff__status_update__free_unpacked(s, NULL);
}

static int cmd_watch(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: watch takes no arguments (see handoff help watch)\n");
        return EXIT_USAGE;
    }
    catch_stop_signals();
    int crc;
    if (!c->client && (crc = connect_broker(c)))
        return crc;
    if (!c->json && isatty(STDERR_FILENO))
        fprintf(stderr, "watching %s at %s (Ctrl-C to stop)\n", c->clinic, c->broker);
    int down = 0;
    while (!stop_requested) {
        int rc = c->client ? sync_mailbox_full(c, NULL, NULL, NULL, watch_print) : EXIT_UNREACHABLE;
        if (rc == EXIT_UNREACHABLE) {
            if (!down)
                fprintf(stderr, "handoff: watch: the broker is not answering; still trying\n");
            down = 1;
            hx_client_destroy(&c->client);
            c->quiet_connect = 1;
            int again = stop_requested ? EXIT_UNREACHABLE : connect_broker(c);
            if (again == EXIT_OK) {
                fprintf(stderr, "handoff: watch: the broker answers again\n");
                down = 0;
            } else if (again != EXIT_UNREACHABLE) {    /* refused (the key was revoked): say why, stop */
                fprintf(stderr, "handoff: watch: %s\n", c->connect_err);
                return again;
            }
        } else if (rc != EXIT_OK) {
            return rc;
        }
        nap_ms(c->interval_ms);
    }
    return EXIT_OK;
}

/* ---- top -------------------------------------------------------------------------------- */

/* One stats sample, checked; NULL after printing why. */
static json_t *top_sample(cli_t *c, int *rc)
{
    char *text = NULL;
    int src = hx_client_stats(c->client, &text);
    if (src) {
        *rc = broker_failure(c, "top", src);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    free(text);
    char err[256];
    if (!j || cli_top_check(j, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: top: the broker's stats %s%s\n", j ? "do not have the expected shape: " : "are not JSON: ",
                j ? err : jerr.text);
        json_decref(j);
        *rc = EXIT_FAIL;
        return NULL;
    }
    return j;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int cmd_top(cli_t *c, int argc, int as_admin)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: top takes no arguments (see handoff help top)\n");
        return EXIT_USAGE;
    }
    int crc;
    if (!c->client && (crc = as_admin ? connect_as(c, HX_ROLE_ADMIN, c->admin) : connect_broker(c)))
        return crc;
    int rc = EXIT_OK;
    int live = !c->once && !c->json && isatty(STDOUT_FILENO);
    json_t *prev = NULL;
    uint64_t prev_mono = 0;
    catch_stop_signals();
    do {
        json_t *cur = top_sample(c, &rc);
        if (!cur)
            break;
        uint64_t now_mono = mono_ms();
        if (c->json) {
            char *s = json_dumps(cur, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (s)
                puts(s);
            free(s);
        } else {
            if (live)
                fputs("\x1b[H\x1b[2J", stdout);
            cli_top_render(stdout, c->broker, cur, cli_now_ms(), prev, prev ? now_mono - prev_mono : 0);
            fflush(stdout);
        }
        json_decref(prev);
        prev = cur;
        prev_mono = now_mono;
        if (live)
            nap_ms(c->interval_ms);
    } while (live && !stop_requested);
    json_decref(prev);
    return rc;
}

/* ---- config ----------------------------------------------------------------------------- */

static int cmd_config(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: config takes no arguments (see handoff help config)\n");
        return EXIT_USAGE;
    }
    static const char *const from[] = {"default", "file", "env", "flag"};
    if (c->json) {
        json_t *s = json_object();
        for (int k = 0; k < CLI_SET_COUNT; k++) {
            const cli_value_t *v = &c->cfg.v[k];
            json_object_set_new(s, cli_set_name((cli_set_t)k),
                                json_pack("{s:o, s:s, s:s}", "value", v->value ? json_string(v->value) : json_null(),
                                          "from", from[v->from], "where", v->where));
        }
        print_json(json_pack("{s:o, s:o}", "config_file", c->config_file[0] ? json_string(c->config_file) : json_null(),
                             "settings", s));
        return EXIT_OK;
    }
    printf("config file: %s\n\n", c->config_file[0] ? c->config_file : "(none)");
    static const char *const head[] = {"SETTING", "VALUE", "FROM"};
    cli_table_t *t = cli_table_new(3, head, NULL);
    for (int k = 0; t && k < CLI_SET_COUNT; k++) {
        const cli_value_t *v = &c->cfg.v[k];
        const char *row[] = {cli_set_name((cli_set_t)k), v->value ? v->value : "-",
                             v->from == CLI_FROM_DEFAULT && !v->value ? "(not set)" : v->where};
        cli_table_add(t, row);
    }
    if (t)
        cli_table_print(t, stdout);
    cli_table_destroy(&t);
    return EXIT_OK;
}

/* ---- operator commands: dead letters and health ---------------------------------------- */

/* The broker's refusal or silence as a message and an exit code. */
static int broker_failure(cli_t *c, const char *what, int rc)
{
    const char *text = c->client ? hx_client_error(c->client) : "";
    fprintf(stderr, "handoff: %s: %s%s%s\n", what, hx_strerror(rc), text[0] ? ": " : "", text);
    if (rc == HX_EREFUSED && hx_client_error_code(c->client) == HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE)
        return EXIT_NOTFOUND;
    return exit_for(rc);
}

/* Parses a message id written as 32 hex characters (either case). */
static int parse_id(const char *cmd, const char *text, uint8_t id[HX_ID_LEN])
{
    size_t len = strlen(text);
    int ok = len == 2 * HX_ID_LEN;
    for (size_t i = 0; ok && i < len; i++)
        ok = isxdigit((unsigned char)text[i]);
    if (!ok) {
        fprintf(stderr,
                "handoff: dlq %s: ID must be a message id of exactly %d hexadecimal characters, as "
                "`handoff dlq list` shows it; got '%s' (%zu characters)\n",
                cmd, 2 * HX_ID_LEN, text, len);
        return -1;
    }
    for (size_t i = 0; i < HX_ID_LEN; i++) {
        char byte[3] = {text[2 * i], text[2 * i + 1], '\0'};
        id[i] = (uint8_t)strtoul(byte, NULL, 16);
    }
    return 0;
}

static const char *kind_text(hx_addr_kind_t k)
{
    return k == HX_TO_SERVICE ? "service" : "mailbox";
}

/* "service:echo" / "mailbox:lakeside" */
static void queue_text(hx_addr_kind_t kind, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%s", kind_text(kind), name ? name : "");
}

/* The referral id a known payload type carries, or "" (with *why set) when it has none.
 * Only this id is read from the payload: a dead letter is shown to operators, never its
 * patient details. A referral not yet through intake has no id in its payload; its
 * network-wide id is derived from the message id (docs/PROTOCOL.md). */
static void payload_referral_id(const hx_msg_t *m, char *out, size_t cap, const char **why)
{
    out[0] = '\0';
    *why = NULL;
    const char *t = m->type ? m->type : "";
    if (strcmp(t, "handoff.Referral") == 0) {
        Handoff__Referral *r = handoff__referral__unpack(NULL, m->payload_len, m->payload);
        if (!r) {
            *why = "payload does not decode as handoff.Referral";
            return;
        }
        if (r->referral_id[0]) {
            snprintf(out, cap, "%s", r->referral_id);
        } else {
            char rid[HX_REFERRAL_ID_LEN + 1];
            hx_referral_id(m->id, rid);
            snprintf(out, cap, "%s", rid);
        }
        handoff__referral__free_unpacked(r, NULL);
    } else if (strcmp(t, "handoff.Case") == 0) {
        Handoff__Case *k = handoff__case__unpack(NULL, m->payload_len, m->payload);
        if (!k) {
            *why = "payload does not decode as handoff.Case";
            return;
        }
        if (k->referral)
            snprintf(out, cap, "%s", k->referral->referral_id);
        handoff__case__free_unpacked(k, NULL);
    } else if (strcmp(t, "handoff.Handoff") == 0) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload_len, m->payload);
        if (!h) {
            *why = "payload does not decode as handoff.Handoff";
            return;
        }
        snprintf(out, cap, "%s", h->referral_id);
        handoff__handoff__free_unpacked(h, NULL);
    } else if (strcmp(t, "handoff.StatusUpdate") == 0) {
        Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
        if (!u) {
            *why = "payload does not decode as handoff.StatusUpdate";
            return;
        }
        snprintf(out, cap, "%s", u->referral_id);
        handoff__status_update__free_unpacked(u, NULL);
    } else {
        *why = "not a clinical type";
    }
    if (!*why && !out[0])
        *why = "the payload carries none";
}

static json_t *dead_to_json(const hx_dead_t *d, int with_payload)
{
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(d->msg.id, hex);
    json_t *o = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:s, s:i, s:I, s:I, s:s}", "id", hex, "to", "kind",
                          kind_text(d->msg.to_kind), "name", d->msg.to ? d->msg.to : "", "from", "kind",
                          kind_text(d->msg.from_kind), "name", d->msg.from ? d->msg.from : "", "type",
                          d->msg.type ? d->msg.type : "", "attempts", (json_int_t)d->attempts, "accepted_at_ms",
                          (json_int_t)d->msg.accepted_at_ms, "dead_at_ms", (json_int_t)d->dead_at_ms, "reason",
                          d->reason ? d->reason : "");
    if (o && with_payload) {
        char rid[128];
        const char *why;
        payload_referral_id(&d->msg, rid, sizeof rid, &why);
        json_object_set_new(o, "payload_bytes", json_integer((json_int_t)d->msg.payload_len));
        json_object_set_new(o, "referral_id", why ? json_null() : json_string(rid));
    }
    return o;
}

static int admin_connect(cli_t *c)
{
    return c->client ? EXIT_OK : connect_as(c, HX_ROLE_ADMIN, c->admin);
}

static int dlq_list(cli_t *c)
{
    hx_dead_list_t *l = NULL;
    int rc = hx_client_dlq_list(c->client, &l);
    if (rc)
        return broker_failure(c, "dlq list", rc);
    if (c->json) {
        json_t *all = json_array();
        for (size_t i = 0; i < l->count; i++)
            json_array_append_new(all, dead_to_json(&l->items[i], 0));
        print_json(all);
    } else {
        static const char *const head[] = {"ID", "QUEUE", "TYPE", "ATTEMPTS", "DEAD AT", "REASON"};
        cli_table_t *t = cli_table_new(6, head, "lllrll");
        for (size_t i = 0; t && i < l->count; i++) {
            const hx_dead_t *d = &l->items[i];
            char hex[2 * HX_ID_LEN + 1], queue[HX_NAME_MAX + 16], attempts[16], when[CLI_FMT_LEN];
            hx_id_hex(d->msg.id, hex);
            queue_text(d->msg.to_kind, d->msg.to, queue, sizeof queue);
            snprintf(attempts, sizeof attempts, "%u", d->attempts);
            const char *row[] = {hex, queue, d->msg.type, attempts, cli_time_abs(d->dead_at_ms, when), d->reason};
            cli_table_add(t, row);
        }
        if (t && l->count)
            cli_table_print(t, stdout);
        cli_table_destroy(&t);
        printf("%zu dead letter(s)\n", l->count);
    }
    hx_dead_list_destroy(&l);
    return EXIT_OK;
}

static int dlq_show(cli_t *c, const char *text, const uint8_t id[HX_ID_LEN])
{
    hx_dead_list_t *l = NULL;
    int rc = hx_client_dlq_show(c->client, id, &l);
    if (rc)
        return broker_failure(c, "dlq show", rc);
    const hx_dead_t *d = NULL;
    for (size_t i = 0; i < l->count && !d; i++)
        if (memcmp(l->items[i].msg.id, id, HX_ID_LEN) == 0)
            d = &l->items[i];
    if (!d) {
        hx_dead_list_destroy(&l);
        fprintf(stderr, "handoff: dlq show: %s is not in the dead-letter queue\n", text);
        return EXIT_NOTFOUND;
    }
    if (c->json) {
        print_json(dead_to_json(d, 1));
    } else {
        char hex[2 * HX_ID_LEN + 1], to[HX_NAME_MAX + 16], from[HX_NAME_MAX + 16], accepted[CLI_FMT_LEN],
            dead[CLI_FMT_LEN], rid[128];
        const char *why;
        hx_id_hex(d->msg.id, hex);
        queue_text(d->msg.to_kind, d->msg.to, to, sizeof to);
        queue_text(d->msg.from_kind, d->msg.from, from, sizeof from);
        cli_time_abs(d->msg.accepted_at_ms, accepted);
        cli_time_abs(d->dead_at_ms, dead);
        payload_referral_id(&d->msg, rid, sizeof rid, &why);
        printf("id           %s\n", hex);
        printf("queue        %s\n", to);
        printf("from         %s\n", from);
        printf("type         %s\n", d->msg.type ? d->msg.type : "");
        printf("attempts     %u\n", d->attempts);
        printf("accepted at  %s\n", accepted);
        printf("dead at      %s\n", dead);
        printf("reason       %s\n", d->reason ? d->reason : "");
        printf("payload      %zu bytes\n", d->msg.payload_len);
        printf("referral id  %s%s%s%s\n", why ? "" : rid, why ? "(" : "", why ? why : "", why ? ")" : "");
    }
    hx_dead_list_destroy(&l);
    return EXIT_OK;
}

static int cmd_dlq(cli_t *c, int argc, char **argv)
{
    const char *sub = argc ? argv[0] : NULL;
    int list = sub && strcmp(sub, "list") == 0;
    int show = sub && strcmp(sub, "show") == 0;
    int replay = sub && strcmp(sub, "replay") == 0;
    int purge = sub && strcmp(sub, "purge") == 0;
    if (!list && !show && !replay && !purge) {
        fprintf(stderr, "handoff: dlq needs one of list, show ID, replay ID, purge ID%s%s%s (see handoff help dlq)\n",
                sub ? "; got '" : "", sub ? sub : "", sub ? "'" : "");
        return EXIT_USAGE;
    }
    if (list && argc != 1) {
        fprintf(stderr, "handoff: dlq list takes no arguments\n");
        return EXIT_USAGE;
    }
    uint8_t id[HX_ID_LEN];
    if (!list) {
        if (argc != 2) {
            fprintf(stderr, "handoff: dlq %s takes exactly one ID (32 hexadecimal characters)\n", sub);
            return EXIT_USAGE;
        }
        if (parse_id(sub, argv[1], id))
            return EXIT_USAGE;
    }
    int rc = admin_connect(c);
    if (rc != EXIT_OK)
        return rc;
    if (list)
        return dlq_list(c);
    if (show)
        return dlq_show(c, argv[1], id);
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(id, hex);
    int src = replay ? hx_client_dlq_replay(c->client, id) : hx_client_dlq_purge(c->client, id);
    if (src) {
        char what[64];
        snprintf(what, sizeof what, "dlq %s %s", sub, hex);
        return broker_failure(c, what, src);
    }
    if (c->json)
        print_json(json_pack("{s:s, s:s}", "id", hex, "done", replay ? "replayed" : "purged"));
    else if (replay)
        printf("%s  replayed: back in its queue with its attempts reset\n", hex);
    else
        printf("%s  purged\n", hex);
    return EXIT_OK;
}

/* Exit 0 when the broker can accept messages, 1 when it says it cannot (its log), 3 when
 * it does not answer, 77 when it refuses this key. */
static int cmd_health(cli_t *c, int argc, int as_admin)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: health takes no arguments\n");
        return EXIT_USAGE;
    }
    int crc;
    if (!c->client && (crc = as_admin ? connect_as(c, HX_ROLE_ADMIN, c->admin) : connect_broker(c))) {
        if (c->json)
            print_json(json_pack("{s:s, s:b, s:b, s:s}", "broker", c->broker, "reachable", crc == EXIT_DENIED,
                                 "healthy", 0, "reason",
                                 crc == EXIT_UNREACHABLE ? "did not answer" : c->connect_err));
        return crc;
    }
    int rc = hx_client_health(c->client);
    const char *text = hx_client_error(c->client);
    if (rc == HX_ETIMEDOUT) {
        fprintf(stderr, "handoff: health: %s\n", text[0] ? text : hx_strerror(rc));
        if (c->json)
            print_json(json_pack("{s:s, s:b, s:b, s:s}", "broker", c->broker, "reachable", 0, "healthy", 0,
                                 "reason", text));
        return EXIT_UNREACHABLE;
    }
    if (rc && (rc != HX_EREFUSED || hx_client_error_code(c->client) != HANDOFF__ERROR_CODE__ERR_UNAVAILABLE))
        return broker_failure(c, "health", rc);     /* not an answer about its health */
    if (c->json)
        print_json(json_pack("{s:s, s:b, s:b, s:s}", "broker", c->broker, "reachable", 1, "healthy", rc == 0,
                             "reason", rc ? text : ""));
    else if (rc == 0)
        printf("healthy: the broker at %s accepts messages\n", c->broker);
    else
        printf("unhealthy: the broker at %s does not accept messages: %s\n", c->broker, text);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

/* keygen NAME: a CURVE key pair, NAME.key (secret, mode 0600) and NAME.pub, in --dir. */
static int cmd_keygen(cli_t *c, int argc, char **argv)
{
    if (argc != 1 || !hx_name_valid(argv[0])) {
        fprintf(stderr, "handoff: keygen takes one NAME of [A-Za-z0-9._-] (see handoff help keygen)\n");
        return EXIT_USAGE;
    }
    char pub[HX_KEY_Z85 + 1], sec[HX_KEY_Z85 + 1];
    if (hx_key_generate(pub, sec) != 0) {
        fprintf(stderr, "handoff: keygen: no CURVE support in this libzmq\n");
        return EXIT_FAIL;
    }
    const char *dir = c->dir ? c->dir : ".";
    char path[4200];
    const char *files[2][2] = {{"key", sec}, {"pub", pub}};
    for (int i = 0; i < 2; i++) {
        char err[4400];
        snprintf(path, sizeof path, "%s/%s.%s", dir, argv[0], files[i][0]);
        if (hx_key_file_write(path, files[i][1], i == 0 ? 0600 : 0644, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: keygen: %s\n", err);
            return EXIT_FAIL;
        }
    }
    if (c->json)
        print_json(json_pack("{s:s, s:s}", "name", argv[0], "public_key", pub));
    else
        printf("%s/%s.key (secret, mode 0600) and %s/%s.pub written\n"
               "allow-list line: %s <clinic|service|admin> %s\n", dir, argv[0], dir, argv[0], pub, argv[0]);
    return EXIT_OK;
}

/* A referral id as intake assigns it: "R-" and 16 Crockford base32 characters. */
static bool referral_id_valid(const char *s)
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if (!s || strlen(s) != HX_REFERRAL_ID_LEN || s[0] != 'R' || s[1] != '-')
        return false;
    for (size_t i = 2; i < HX_REFERRAL_ID_LEN; i++)
        if (!strchr(alphabet, s[i]))
            return false;
    return true;
}

/* accept, decline, start, complete, revoke: sent to scheduling, which answers in this
 * clinic's mailbox; waits for that answer. */
static int cmd_change(cli_t *c, const char *event, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "handoff: %s takes one referral id (see handoff help %s)\n", event, event);
        return EXIT_USAGE;
    }
    if (!referral_id_valid(argv[0])) {
        fprintf(stderr, "handoff: %s: '%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)\n",
                event, argv[0]);
        return EXIT_USAGE;
    }
    if (strcmp(event, "decline") == 0 && (!c->reason || !c->reason[0])) {
        fprintf(stderr, "handoff: decline needs --reason TEXT (the referring clinic is told why)\n");
        return EXIT_USAGE;
    }
    Handoff__Discipline disc = HANDOFF__DISCIPLINE__DISCIPLINE_UNSPECIFIED;
    if (c->discipline && !(disc = hx_discipline_from_text(c->discipline))) {
        fprintf(stderr, "handoff: --discipline: must be physiotherapy or massage_therapy, got '%s'\n", c->discipline);
        return EXIT_USAGE;
    }
    int crc;
    if (!c->client && (crc = connect_broker(c)))
        return crc;
    Handoff__StatusChange ch = HANDOFF__STATUS_CHANGE__INIT;
    ch.referral_id = argv[0];
    ch.event = (char *)event;
    ch.reason = (char *)(c->reason ? c->reason : "");
    ch.discipline = disc;
    size_t len = handoff__status_change__get_packed_size(&ch);
    uint8_t buf[1024];
    if (len > sizeof buf) {
        fprintf(stderr, "handoff: --reason: at most 800 characters\n");
        return EXIT_USAGE;
    }
    handoff__status_change__pack(&ch, buf);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = "scheduling";
    m.type = "handoff.StatusChange";
    m.payload = buf;
    m.payload_len = len;
    int rc = hx_client_submit(c->client, &m, 1);
    if (rc)
        return broker_failure(c, event, rc);
    /* the answer comes to this clinic's mailbox */
    uint8_t *answer = NULL;
    size_t answer_len = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        rc = sync_mailbox_watch(c, m.id, &answer, &answer_len);
        if (rc != EXIT_OK || answer)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > 4L * c->timeout_ms)
            break;
        struct timespec nap = {0, 50 * 1000000};
        nanosleep(&nap, NULL);
    }
    if (rc != EXIT_OK)
        return rc;
    if (!answer) {
        if (c->json)
            print_json(json_pack("{s:s, s:s, s:b}", "referral_id", argv[0], "event", event, "answered", 0));
        else
            printf("%s %s: sent; no answer yet (see 'handoff status %s' later)\n", event, argv[0], argv[0]);
        return EXIT_OK;
    }
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, answer_len, answer);
    free(answer);
    if (!s) {
        fprintf(stderr, "handoff: %s %s: the answer does not decode\n", event, argv[0]);
        return EXIT_FAIL;
    }
    if (c->json)
        print_json(hx_status_to_json(s));
    else if (s->refused)
        printf("%s %s refused: %s\n", event, argv[0], s->reason);
    else
        printf("%s %s: %s — %s\n", argv[0], event, hx_status_text(s->status), s->reason);
    rc = s->refused ? EXIT_FAIL : EXIT_OK;
    handoff__status_update__free_unpacked(s, NULL);
    return rc;
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* Reads the config file (--config, HANDOFF_CONFIG, or ~/.handoff/config when it exists) and
 * the environment under the flags already in c->cfg, and sets the fields from them. */
static int resolve_settings(cli_t *c, const char *config_flag)
{
    char err[2048];
    if (c->flag_err[0]) {
        fprintf(stderr, "handoff: %s\n", c->flag_err);
        return -1;
    }
    if (cli_config_env(&c->cfg, env_get, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: %s\n", err);
        return -1;
    }
    const char *file = config_flag;
    const char *env = getenv("HANDOFF_CONFIG");
    if (!file && env && *env)
        file = env;
    if (file) {
        snprintf(c->config_file, sizeof c->config_file, "%s", file);
    } else {
        const char *h = getenv("HOME");
        char path[4200];
        snprintf(path, sizeof path, "%s/.handoff/config", h && *h ? h : ".");
        if (access(path, F_OK) == 0)
            snprintf(c->config_file, sizeof c->config_file, "%s", path);
    }
    if (c->config_file[0] && cli_config_file(&c->cfg, c->config_file, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: %s%s\n", err,
                config_flag ? " (--config)" : env && *env ? " (HANDOFF_CONFIG)" : "");
        return -1;
    }
    c->broker = cli_config_get(&c->cfg, CLI_SET_BROKER);
    c->clinic = cli_config_get(&c->cfg, CLI_SET_CLINIC);
    c->admin = cli_config_get(&c->cfg, CLI_SET_ADMIN);
    c->home = cli_config_get(&c->cfg, CLI_SET_HOME);
    c->server_key = cli_config_get(&c->cfg, CLI_SET_SERVER_KEY);
    c->key = cli_config_get(&c->cfg, CLI_SET_KEY);
    c->timeout_ms = cli_config_u32(&c->cfg, CLI_SET_TIMEOUT_MS);
    c->interval_ms = cli_config_u32(&c->cfg, CLI_SET_INTERVAL_MS);
    c->window = cli_config_u32(&c->cfg, CLI_SET_WINDOW);
    return 0;
}

static int help_for(const char *cmd, FILE *out)
{
    const char *page = cli_command_help(cmd);
    if (!page) {
        fprintf(stderr, "handoff: no command '%s' (commands: %s)\n", cmd, cli_command_list());
        return EXIT_USAGE;
    }
    fputs(page, out);
    return EXIT_OK;
}

static int run(cli_t *c, int argc, char **argv, const char *config_flag)
{
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(c, nargs, args);
    if (strcmp(cmd, "datakey") == 0) {
        if (nargs != 1) {
            fprintf(stderr, "handoff: usage: handoff datakey FILE\n");
            return EXIT_USAGE;
        }
        char hex[65], err[4400];
        hx_data_key_generate(hex);
        if (hx_key_file_write(args[0], hex, 0600, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: datakey: %s\n", err);
            return EXIT_FAIL;
        }
        printf("%s written (mode 0600): keep it apart from the data directory's backups\n", args[0]);
        return EXIT_OK;
    }
    if (strcmp(cmd, "audit") == 0) {
        if ((nargs != 2 && nargs != 3) || strcmp(args[0], "verify") != 0) {
            fprintf(stderr, "handoff: usage: handoff audit verify FILE [DATA_DIR|ANCHOR_FILE]\n");
            return EXIT_USAGE;
        }
        char why[512];
        size_t lines = 0, anchored = 0;
        long bad = nargs == 3 ? hx_audit_verify_anchored(args[1], args[2], &lines, &anchored, why, sizeof why)
                              : hx_audit_verify(args[1], &lines, why, sizeof why);
        if (c->json) {
            print_json(json_pack("{s:s, s:b, s:I, s:s, s:I}", "file", args[1], "intact", bad == 0, "lines",
                                 (json_int_t)lines, "reason", bad ? why : "", "anchored", (json_int_t)anchored));
            return bad == 0 ? EXIT_OK : EXIT_FAIL;
        }
        if (bad == 0 && nargs == 3) {
            printf("ok: %zu line(s), the chain holds and reaches the anchored line %zu\n", lines, anchored);
            return EXIT_OK;
        }
        if (bad == 0) {
            printf("ok: %zu line(s), the chain holds\n", lines);
            return EXIT_OK;
        }
        printf("broken: %s\n", why);
        return EXIT_FAIL;
    }
    static const char *const changes[] = {"accept", "decline", "start", "complete", "revoke"};
    const char *change = NULL;
    for (size_t i = 0; i < sizeof changes / sizeof *changes; i++)
        if (strcmp(cmd, changes[i]) == 0)
            change = changes[i];
    static const char *const clinic_cmds[] = {"submit", "import", "inbox", "status", "watch", "handoffs"};
    int clinic_cmd = change != NULL;
    for (size_t i = 0; i < sizeof clinic_cmds / sizeof *clinic_cmds; i++)
        clinic_cmd |= strcmp(cmd, clinic_cmds[i]) == 0;
    int admin_cmd = !strcmp(cmd, "dlq") || !strcmp(cmd, "health") || !strcmp(cmd, "top");
    if (!clinic_cmd && !admin_cmd && strcmp(cmd, "config") != 0) {
        fprintf(stderr, "handoff: unknown command '%s' (commands: %s; see handoff --help)\n", cmd,
                cli_command_list());
        return EXIT_USAGE;
    }
    if (resolve_settings(c, config_flag) != 0)
        return EXIT_USAGE;
    if (strcmp(cmd, "config") == 0)
        return cmd_config(c, nargs);
    if (c->server_key || c->key) {
        char err[600];
        if (!c->server_key || !c->key) {
            fprintf(stderr, "handoff: CURVE needs both server-key and key (one of them is set: %s)\n",
                    c->server_key ? c->cfg.v[CLI_SET_SERVER_KEY].where : c->cfg.v[CLI_SET_KEY].where);
            return EXIT_USAGE;
        }
        if (hx_key_load_public(c->server_key, c->curve_server, err, sizeof err) ||
            hx_key_load(c->key, c->curve_public, c->curve_secret, err, sizeof err)) {
            fprintf(stderr, "handoff: %s\n", err);
            return EXIT_USAGE;
        }
    }
    if (admin_cmd) {
        /* dlq always speaks as the admin; health and top as the clinic when one is named (and
         * no admin was asked for), so a clinic can look at the broker without operator rights. */
        int admin_given = c->cfg.v[CLI_SET_ADMIN].from != CLI_FROM_DEFAULT;
        int as_admin = strcmp(cmd, "dlq") == 0 || admin_given || !c->clinic;
        if (strcmp(cmd, "dlq") == 0)
            return cmd_dlq(c, nargs, args);
        if (strcmp(cmd, "top") == 0)
            return cmd_top(c, nargs, as_admin);
        return cmd_health(c, nargs, as_admin);
    }
    if (!c->clinic) {
        fprintf(stderr, "handoff: %s needs this clinic's id: --clinic ID, HANDOFF_CLINIC, or 'clinic = ID' in the "
                        "config file\n", cmd);
        return EXIT_USAGE;
    }
    if (db_open(c))
        return EXIT_FAIL;
    if (strcmp(cmd, "submit") == 0)
        return cmd_submit(c, nargs, args);
    if (strcmp(cmd, "import") == 0)
        return cmd_import(c, nargs, args);
    if (strcmp(cmd, "inbox") == 0)
        return cmd_inbox(c, nargs);
    if (strcmp(cmd, "handoffs") == 0)
        return cmd_handoffs(c, nargs);
    if (strcmp(cmd, "watch") == 0)
        return cmd_watch(c, nargs);
    if (change)
        return cmd_change(c, change, nargs, args);
    return cmd_status(c, nargs, args);
}

int main(int argc, char **argv)
{
    enum { O_CONFIG = 256, O_FORMAT, O_DRY_RUN, O_ONCE, O_SETTING };
    static const struct option opts[] = {
        {"broker", required_argument, NULL, O_SETTING + CLI_SET_BROKER},
        {"clinic", required_argument, NULL, O_SETTING + CLI_SET_CLINIC},
        {"admin", required_argument, NULL, O_SETTING + CLI_SET_ADMIN},
        {"home", required_argument, NULL, O_SETTING + CLI_SET_HOME},
        {"timeout-ms", required_argument, NULL, O_SETTING + CLI_SET_TIMEOUT_MS},
        {"server-key", required_argument, NULL, O_SETTING + CLI_SET_SERVER_KEY},
        {"key", required_argument, NULL, O_SETTING + CLI_SET_KEY},
        {"interval-ms", required_argument, NULL, O_SETTING + CLI_SET_INTERVAL_MS},
        {"window", required_argument, NULL, O_SETTING + CLI_SET_WINDOW},
        {"config", required_argument, NULL, O_CONFIG},
        {"json", no_argument, NULL, 'j'},
        {"no-validate", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {"reason", required_argument, NULL, 'r'},
        {"discipline", required_argument, NULL, 'd'},
        {"dir", required_argument, NULL, 'D'},
        {"format", required_argument, NULL, O_FORMAT},
        {"dry-run", no_argument, NULL, O_DRY_RUN},
        {"once", no_argument, NULL, O_ONCE},
        {NULL, 0, NULL, 0}};
    cli_t c = {0};
    cli_config_init(&c.cfg);
    const char *config_flag = NULL;
    int help = 0, o, rc = EXIT_USAGE;
    char err[1024];
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o >= O_SETTING && o < O_SETTING + CLI_SET_COUNT) {
            if (cli_config_flag(&c.cfg, (cli_set_t)(o - O_SETTING), optarg, err, sizeof err) != 0 && !c.flag_err[0])
                snprintf(c.flag_err, sizeof c.flag_err, "%s", err);
            continue;
        }
        switch (o) {
        case O_CONFIG: config_flag = optarg; break;
        case 'j': c.json = 1; break;
        case 'n': c.no_validate = 1; break;
        case 'r': c.reason = optarg; break;
        case 'd': c.discipline = optarg; break;
        case 'D': c.dir = optarg; break;
        case O_FORMAT: c.format = optarg; break;
        case O_DRY_RUN: c.dry_run = 1; break;
        case O_ONCE: c.once = 1; break;
        case 'h': help = 1; break;
        default: fputs("handoff: see handoff --help\n", stderr); goto out;
        }
    }
    if (optind >= argc) {
        fputs(cli_usage(), help ? stdout : stderr);
        rc = help ? EXIT_OK : EXIT_USAGE;
        goto out;
    }
    if (strcmp(argv[optind], "help") == 0) {
        if (argc - optind > 2) {
            fprintf(stderr, "handoff: usage: handoff help [COMMAND]\n");
        } else if (argc - optind == 2) {
            rc = help_for(argv[optind + 1], stdout);
        } else {
            fputs(cli_usage(), stdout);
            rc = EXIT_OK;
        }
        goto out;
    }
    if (help) {
        rc = help_for(argv[optind], stdout);
        goto out;
    }
    rc = run(&c, argc, argv, config_flag);
    hx_client_destroy(&c.client);
    sqlite3_close(c.db);
out:
    cli_config_free(&c.cfg);
    return rc;
}
