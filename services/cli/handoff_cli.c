/* handoff — the clinic command line: submit referrals, read the inbox of handoffs this
 * clinic received, follow the status of referrals it sent; and, for operators, the
 * broker's dead-letter queue and health.
 *
 * Messages fetched from the clinic's mailbox are written to a local SQLite file in one
 * transaction before they are acked, so each arrives exactly once at the clinic. The
 * operator commands (dlq, health) open no local store: a dead letter is shown by its
 * envelope and referral id only, never by the patient details in its payload. */
#include "hx_audit.h"
#include "hx_client.h"
#include "hx_curve.h"
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_opt.h"
#include "hx_refjson.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_NOTFOUND = 4, EXIT_DATAERR = 65 };

static const char usage[] =
    "usage: handoff [options] COMMAND [ARGS]\n"
    "\n"
    "The clinic's command line for the Handoff referral network.\n"
    "\n"
    "clinic commands (need --clinic):\n"
    "  submit FILE.json...   submit referrals; prints each referral id once the broker has\n"
    "                        accepted it (resubmitting a file is safe: same id, no copy)\n"
    "  inbox                 handoffs this clinic received (patient, discipline, therapist, slot)\n"
    "  status [ID]           referrals this clinic sent (or holds) with their latest status,\n"
    "                        or the whole history of one\n"
    "  accept ID             as the receiving clinic: take the referral on\n"
    "  decline ID --reason TEXT\n"
    "                        as the receiving clinic: give it back; it is booked again with\n"
    "                        another therapist (never the one who declined)\n"
    "  start ID              as the receiving clinic: the first session took place\n"
    "  complete ID           as the receiving clinic: care is finished\n"
    "  revoke ID [--reason TEXT]\n"
    "                        as the referring clinic: withdraw it; the receiver is told\n"
    "  These wait for scheduling's answer: exit 0 done, 1 refused (with the reason: the\n"
    "  current status and what is allowed, or who may do it).\n"
    "\n"
    "  audit verify FILE     checks the broker's audit log: exit 0 when the chain holds, 1 with\n"
    "                        the first broken line (edited, deleted, added or moved lines)\n"
    "  datakey FILE          a new key for the broker's --data-key (sealed message bodies)\n"
    "  keygen NAME           a CURVE key pair: NAME.key (secret, 0600) and NAME.pub, in --dir;\n"
    "                        prints the allow-list line for the broker\n"
    "\n"
    "operator commands (an admin session named by --admin; --clinic is not needed):\n"
    "  dlq list              dead letters: messages that failed on every attempt, with the\n"
    "                        queue, type, attempts, when and the last error\n"
    "  dlq show ID           one dead letter: its fields, payload size and referral id\n"
    "                        (never the patient details)\n"
    "  dlq replay ID         put it back in its queue with its attempts reset (same id)\n"
    "  dlq purge ID          delete it for good\n"
    "  health                whether the broker can accept messages (as the clinic when\n"
    "                        --clinic is set and --admin is not, otherwise as the admin)\n"
    "  ID is a message id as `dlq list` shows it: 32 hexadecimal characters.\n"
    "\n"
    "options (each also from the environment variable shown):\n"
    "  --broker ENDPOINT     the broker [HANDOFF_BROKER, default tcp://127.0.0.1:5555]\n"
    "  --clinic ID           this clinic's id [HANDOFF_CLINIC, required by clinic commands]\n"
    "  --admin NAME          the operator's name for dlq and health [HANDOFF_ADMIN, operator]\n"
    "  --home DIR            where this clinic's received messages are kept\n"
    "                        [HANDOFF_HOME, default ~/.handoff]\n"
    "  --timeout-ms N        wait per attempt for the broker [HANDOFF_TIMEOUT_MS, 3000]\n"
    "  --json                machine-readable output\n"
    "  --no-validate         submit without checking the referral locally first\n"
    "  --server-key FILE     CURVE: the broker's public key [HANDOFF_SERVER_KEY]\n"
    "  --key FILE            CURVE: this clinic's (or operator's) secret key [HANDOFF_KEY]\n"
    "  --dir DIR             where keygen writes [.]\n"
    "  --reason TEXT         why (decline, revoke)\n"
    "  --discipline D        physiotherapy or massage_therapy, when this clinic holds both\n"
    "                        bookings of a referral\n"
    "  -h, --help            this text\n"
    "\n"
    "exit codes: 0 done (health: the broker accepts messages);\n"
    "            1 refused or failed (health: the broker cannot write its log);\n"
    "            2 usage (e.g. a malformed ID); 3 broker unreachable;\n"
    "            4 no such referral, or no such dead letter; 65 an input file is invalid.\n"
    "\n"
    "examples:\n"
    "  HANDOFF_CLINIC=northpoint handoff submit referral.json\n"
    "  handoff --clinic lakeside inbox\n"
    "  handoff --clinic northpoint status R-0A1B2C3D4E5F6G7H --json\n"
    "  handoff --clinic lakeside accept R-0A1B2C3D4E5F6G7H\n"
    "  handoff --clinic lakeside decline R-0A1B2C3D4E5F6G7H --reason 'no Portuguese speaker free'\n"
    "  handoff --admin ops dlq list\n"
    "  handoff --admin ops dlq show 5f0c1e2d3b4a59687766554433221100\n"
    "  handoff --admin ops dlq replay 5f0c1e2d3b4a59687766554433221100\n"
    "  handoff health || echo 'broker not accepting'\n";

typedef struct {
    const char *broker, *clinic, *home, *admin, *reason, *discipline, *server_key, *key, *dir;
    char curve_server[41], curve_public[41], curve_secret[41];
    uint32_t timeout_ms;
    int json, no_validate;
    hx_client_t *client;
    sqlite3 *db;
} cli_t;

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
    const char *schema =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE IF NOT EXISTS received ("
        "  id BLOB PRIMARY KEY, type TEXT NOT NULL, referral_id TEXT NOT NULL,"
        "  from_name TEXT NOT NULL, at_ms INTEGER NOT NULL, payload BLOB NOT NULL);"
        "CREATE INDEX IF NOT EXISTS received_referral ON received(referral_id, at_ms);"
        "CREATE TABLE IF NOT EXISTS sent ("
        "  referral_id TEXT PRIMARY KEY, ref TEXT NOT NULL, file TEXT NOT NULL, at_ms INTEGER NOT NULL);";
    char *err = NULL;
    if (sqlite3_exec(c->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "handoff: %s: %s\n", path, err);
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int connect_as(cli_t *c, hx_role_t role, const char *name)
{
    char err[512];
    hx_client_opts_t o = {.endpoint = c->broker, .clinic = name, .role = role, .timeout_ms = (int)c->timeout_ms};
    if (c->curve_server[0]) {
        o.curve_server_key = c->curve_server;
        o.curve_public = c->curve_public;
        o.curve_secret = c->curve_secret;
    }
    c->client = hx_client_connect(&o, err, sizeof err);
    if (!c->client) {
        fprintf(stderr, "handoff: %s\n", err);
        return -1;
    }
    return 0;
}

static int connect_broker(cli_t *c)
{
    return connect_as(c, HX_ROLE_CLINIC, c->clinic);
}

/* Moves everything waiting in the mailbox into the local store: stored first, then acked.
 * When watch is set and a message answering it (its correlation id) arrives, its payload
 * is copied to *answer (malloc'd, *answer_len bytes). */
static int sync_mailbox_watch(cli_t *c, const uint8_t *watch, uint8_t **answer, size_t *answer_len)
{
    if (!c->client && connect_broker(c))
        return EXIT_UNREACHABLE;
    sqlite3_stmt *ins = NULL;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT OR IGNORE INTO received(id, type, referral_id, from_name, at_ms, payload) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &ins, NULL) != SQLITE_OK)
        return EXIT_FAIL;
    int rc = EXIT_OK;
    for (;;) {
        hx_batch_t *b = NULL;
        int frc = hx_client_fetch(c->client, 100, &b);
        if (frc) {
            fprintf(stderr, "handoff: fetching the mailbox: %s%s%s\n", hx_strerror(frc),
                    hx_client_error(c->client)[0] ? ": " : "", hx_client_error(c->client));
            rc = frc == HX_ETIMEDOUT ? EXIT_UNREACHABLE : EXIT_FAIL;
            break;
        }
        if (b->count == 0) {
            hx_batch_destroy(&b);
            break;
        }
        uint8_t (*ids)[HX_ID_LEN] = calloc(b->count, HX_ID_LEN);
        sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        int ok = ids != NULL;
        for (size_t i = 0; i < b->count && ok; i++) {
            const hx_msg_t *m = &b->msgs[i];
            char referral_id[64] = "";
            uint64_t at = m->accepted_at_ms;
            const char *type = m->type;
            if (strcmp(m->type, "handoff.Handoff") == 0) {
                Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload_len, m->payload);
                if (h) {
                    snprintf(referral_id, sizeof referral_id, "%s", h->referral_id);
                    handoff__handoff__free_unpacked(h, NULL);
                }
            } else if (strcmp(m->type, "handoff.StatusUpdate") == 0) {
                Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
                if (s) {
                    snprintf(referral_id, sizeof referral_id, "%s", s->referral_id);
                    if (s->at_ms)
                        at = s->at_ms;
                    if (s->refused)             /* an answer to this clinic, not a change: kept apart */
                        type = "handoff.Refusal";
                    handoff__status_update__free_unpacked(s, NULL);
                }
            }
            sqlite3_reset(ins);
            sqlite3_bind_blob(ins, 1, m->id, HX_ID_LEN, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, type, -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 3, referral_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 4, m->from, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 5, (sqlite3_int64)at);
            sqlite3_bind_blob(ins, 6, m->payload, (int)m->payload_len, SQLITE_STATIC);
            ok = sqlite3_step(ins) == SQLITE_DONE;
            memcpy(ids[i], m->id, HX_ID_LEN);
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
        size_t got = b->count;
        free(ids);
        hx_batch_destroy(&b);
        if (rc != EXIT_OK || got < 100)
            break;
    }
    sqlite3_finalize(ins);
    return rc;
}

static int sync_mailbox(cli_t *c)
{
    return sync_mailbox_watch(c, NULL, NULL, NULL);
}

/* ---- output helpers --------------------------------------------------------------------- */

static void format_ms(uint64_t ms, char out[20])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

/* Prints s cut or padded to `width` columns (counting UTF-8 characters, not bytes; a
 * negative width means no padding), then sep. */
static void cell(const char *s, int width, const char *sep)
{
    const char *p = s ? s : "", *end = p;
    int cols = 0;
    while (*end && (width < 0 || cols < width)) {
        end++;
        while ((*end & 0xC0) == 0x80)
            end++;
        cols++;
    }
    fwrite(p, 1, (size_t)(end - p), stdout);
    for (; cols < width; cols++)
        putchar(' ');
    fputs(sep, stdout);
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(j);
}

/* ---- commands --------------------------------------------------------------------------- */

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
    Handoff__Referral *r = hx_referral_from_json(j, &errs);
    json_decref(j);
    if (r && !c->no_validate) {
        if (!r->ref[0])
            hx_errors_add(&errs, "ref", "required: this clinic's own number for the referral");
        hx_intake_validate(r, &errs);
    }
    if (errs.count) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s: %s: %s\n", file, errs.items[i].path, errs.items[i].why);
        if (errs.dropped)
            fprintf(stderr, "%s: and %zu more\n", file, errs.dropped);
        hx_referral_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

static int cmd_submit(cli_t *c, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "handoff: submit needs at least one FILE.json (see --help)\n");
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
        if (!c->client && connect_broker(c)) {
            hx_referral_free(r);
            rc = EXIT_UNREACHABLE;
            break;
        }
        hx_msg_t m = {0};
        char rid[HX_REFERRAL_ID_LEN + 1];
        hx_submission_id(c->clinic, r->ref, m.id);
        hx_referral_id(m.id, rid);
        size_t len = handoff__referral__get_packed_size(r);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            hx_referral_free(r);
            rc = EXIT_FAIL;
            break;
        }
        handoff__referral__pack(r, buf);
        m.to_kind = HX_TO_SERVICE;
        m.to = "intake";
        m.type = "handoff.Referral";
        m.payload = buf;
        m.payload_len = len;
        int src = hx_client_submit(c->client, &m, 1);
        free(buf);
        if (src) {
            fprintf(stderr, "%s: not accepted: %s%s%s\n", argv[i], hx_strerror(src),
                    hx_client_error(c->client)[0] ? ": " : "", hx_client_error(c->client));
            rc = src == HX_ETIMEDOUT ? EXIT_UNREACHABLE : EXIT_FAIL;
            hx_referral_free(r);
            continue;
        }
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO sent(referral_id, ref, file, at_ms) VALUES (?,?,?,?)",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, r->ref, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, argv[i], -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, (sqlite3_int64)wall_ms());
            sqlite3_step(st);
            sqlite3_finalize(st);
        }
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

static int cmd_inbox(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: inbox takes no arguments\n");
        return EXIT_USAGE;
    }
    int rc = sync_mailbox(c);
    if (rc != EXIT_OK)
        return rc;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(c->db, "SELECT payload, from_name, at_ms FROM received WHERE type = 'handoff.Handoff' "
                              "ORDER BY at_ms, rowid", -1, &st, NULL);
    json_t *all = json_array();
    size_t n = 0;
    static const int widths[] = {18, 24, 10, 15, 20, 16, 3, -1};
    if (!c->json) {
        const char *head[] = {"REFERRAL", "PATIENT", "BORN", "DISCIPLINE", "THERAPIST", "START", "MIN", "FROM CLINIC"};
        for (int k = 0; k < 8; k++)
            cell(head[k], widths[k], k < 7 ? "  " : "\n");
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, (size_t)sqlite3_column_bytes(st, 0),
                                                       sqlite3_column_blob(st, 0));
        if (!h)
            continue;
        n++;
        if (c->json) {
            json_array_append_new(all, hx_handoff_to_json(h));
        } else {
            const Handoff__Patient *p = h->referral ? h->referral->patient : NULL;
            const Handoff__Booking *b = h->booking;
            char name[160];
            snprintf(name, sizeof name, "%s %s", p ? p->given_name : "", p ? p->family_name : "");
            char minutes[16];
            snprintf(minutes, sizeof minutes, "%3u", b ? b->minutes : 0);
            const char *row[] = {h->referral_id, name, p ? p->birth_date : "",
                                 b ? hx_discipline_text(b->discipline) : "", b ? b->therapist_name : "",
                                 b ? b->start : "", minutes, h->referral ? h->referral->referring_clinic : ""};
            for (int k = 0; k < 8; k++)
                cell(row[k], widths[k], k < 7 ? "  " : "\n");
        }
        handoff__handoff__free_unpacked(h, NULL);
    }
    sqlite3_finalize(st);
    if (c->json)
        print_json(all);
    else {
        json_decref(all);
        printf("%zu handoff(s) received by %s\n", n, c->clinic);
    }
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
    static const int hist_w[] = {19, 11, 11, -1}, list_w[] = {18, 16, 11, 19, -1};
    if (!c->json) {
        const char *hist[] = {"TIME", "STATUS", "BY", "DETAIL"};
        const char *list[] = {"REFERRAL", "REF", "STATUS", "UPDATED", "DETAIL"};
        for (int k = 0; id && k < 4; k++)
            cell(hist[k], hist_w[k], k < 3 ? "  " : "\n");
        for (int k = 0; !id && k < 5; k++)
            cell(list[k], list_w[k], k < 4 ? "  " : "\n");
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, (size_t)sqlite3_column_bytes(st, 0),
                                                                  sqlite3_column_blob(st, 0));
        if (!s)
            continue;
        n++;
        char when[20];
        format_ms(s->at_ms, when);
        if (c->json)
            json_array_append_new(all, hx_status_to_json(s));
        else if (id) {
            const char *row[] = {when, hx_status_text(s->status), s->by, s->reason};
            for (int k = 0; k < 4; k++)
                cell(row[k], hist_w[k], k < 3 ? "  " : "\n");
        } else {
            const char *row[] = {s->referral_id, s->ref, hx_status_text(s->status), when, s->reason};
            for (int k = 0; k < 5; k++)
                cell(row[k], list_w[k], k < 4 ? "  " : "\n");
        }
        handoff__status_update__free_unpacked(s, NULL);
    }
    sqlite3_finalize(st);
    if (c->json) {
        if (id) {
            json_t *o = json_pack("{s:s, s:o}", "referral_id", id, "history", all);
            print_json(o);
        } else {
            print_json(all);
        }
    } else {
        json_decref(all);
    }
    if (id && n == 0) {
        fprintf(stderr, "handoff: no status received for %s at clinic %s\n", id, c->clinic);
        return EXIT_NOTFOUND;
    }
    return EXIT_OK;
}

/* ---- operator commands: dead letters and health ---------------------------------------- */

/* The broker's refusal or silence as a message and an exit code. */
static int broker_failure(cli_t *c, const char *what, int rc)
{
    const char *text = c->client ? hx_client_error(c->client) : "";
    fprintf(stderr, "handoff: %s: %s%s%s\n", what, hx_strerror(rc), text[0] ? ": " : "", text);
    if (rc == HX_ETIMEDOUT)
        return EXIT_UNREACHABLE;
    if (rc == HX_EREFUSED && hx_client_error_code(c->client) == HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE)
        return EXIT_NOTFOUND;
    return EXIT_FAIL;
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
    if (!c->client && connect_as(c, HX_ROLE_ADMIN, c->admin))
        return EXIT_UNREACHABLE;
    return EXIT_OK;
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
        static const int w[] = {32, 24, 20, 8, 19, -1};
        const char *head[] = {"ID", "QUEUE", "TYPE", "ATTEMPTS", "DEAD AT", "REASON"};
        for (int k = 0; k < 6; k++)
            cell(head[k], w[k], k < 5 ? "  " : "\n");
        for (size_t i = 0; i < l->count; i++) {
            const hx_dead_t *d = &l->items[i];
            char hex[2 * HX_ID_LEN + 1], queue[HX_NAME_MAX + 16], attempts[16], when[20];
            hx_id_hex(d->msg.id, hex);
            queue_text(d->msg.to_kind, d->msg.to, queue, sizeof queue);
            snprintf(attempts, sizeof attempts, "%8u", d->attempts);
            format_ms(d->dead_at_ms, when);
            const char *row[] = {hex, queue, d->msg.type, attempts, when, d->reason};
            for (int k = 0; k < 6; k++)
                cell(row[k], w[k], k < 5 ? "  " : "\n");
        }
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
        char hex[2 * HX_ID_LEN + 1], to[HX_NAME_MAX + 16], from[HX_NAME_MAX + 16], accepted[20], dead[20], rid[128];
        const char *why;
        hx_id_hex(d->msg.id, hex);
        queue_text(d->msg.to_kind, d->msg.to, to, sizeof to);
        queue_text(d->msg.from_kind, d->msg.from, from, sizeof from);
        format_ms(d->msg.accepted_at_ms, accepted);
        format_ms(d->dead_at_ms, dead);
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
        fprintf(stderr, "handoff: dlq needs one of list, show ID, replay ID, purge ID%s%s%s (see --help)\n",
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
 * it does not answer. */
static int cmd_health(cli_t *c, int argc, int as_admin)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: health takes no arguments\n");
        return EXIT_USAGE;
    }
    if (!c->client && (as_admin ? connect_as(c, HX_ROLE_ADMIN, c->admin) : connect_broker(c))) {
        if (c->json)
            print_json(json_pack("{s:s, s:b, s:b, s:s}", "broker", c->broker, "reachable", 0, "healthy", 0,
                                 "reason", "did not answer"));
        return EXIT_UNREACHABLE;
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
        fprintf(stderr, "handoff: keygen takes one NAME of [A-Za-z0-9._-] (see --help)\n");
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
        fprintf(stderr, "handoff: %s takes one referral id (see --help)\n", event);
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
    if (!c->client && connect_broker(c))
        return EXIT_UNREACHABLE;
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

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'}, {"clinic", required_argument, NULL, 'c'},
        {"home", required_argument, NULL, 'H'},   {"timeout-ms", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},         {"no-validate", no_argument, NULL, 'n'},
        {"admin", required_argument, NULL, 'a'},  {"help", no_argument, NULL, 'h'},
        {"reason", required_argument, NULL, 'r'}, {"discipline", required_argument, NULL, 'd'},
        {"server-key", required_argument, NULL, 'S'}, {"key", required_argument, NULL, 'K'},
        {"dir", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0}};
    cli_t c = {0};
    const char *timeout = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'b': c.broker = optarg; break;
        case 'c': c.clinic = optarg; break;
        case 'H': c.home = optarg; break;
        case 't': timeout = optarg; break;
        case 'j': c.json = 1; break;
        case 'n': c.no_validate = 1; break;
        case 'a': c.admin = optarg; break;
        case 'r': c.reason = optarg; break;
        case 'd': c.discipline = optarg; break;
        case 'S': c.server_key = optarg; break;
        case 'K': c.key = optarg; break;
        case 'D': c.dir = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs("handoff: see --help\n", stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    if (strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(&c, argc - optind - 1, argv + optind + 1);
    if (strcmp(cmd, "datakey") == 0) {
        if (argc - optind != 2) {
            fprintf(stderr, "handoff: usage: handoff datakey FILE\n");
            return EXIT_USAGE;
        }
        const char *file = argv[optind + 1];
        char hex[65], err[4400];
        hx_data_key_generate(hex);
        if (hx_key_file_write(file, hex, 0600, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: datakey: %s\n", err);
            return EXIT_FAIL;
        }
        printf("%s written (mode 0600): keep it apart from the data directory's backups\n", file);
        return EXIT_OK;
    }
    if (strcmp(cmd, "audit") == 0) {
        if (argc - optind != 3 || strcmp(argv[optind + 1], "verify") != 0) {
            fprintf(stderr, "handoff: usage: handoff audit verify FILE\n");
            return EXIT_USAGE;
        }
        char why[512];
        size_t lines = 0;
        long bad = hx_audit_verify(argv[optind + 2], &lines, why, sizeof why);
        if (bad == 0) {
            printf("ok: %zu line(s), the chain holds\n", lines);
            return EXIT_OK;
        }
        printf("broken: %s\n", why);
        return EXIT_FAIL;
    }
    c.server_key = hx_opt_pick(c.server_key, "HANDOFF_SERVER_KEY", NULL);
    c.key = hx_opt_pick(c.key, "HANDOFF_KEY", NULL);
    if (c.server_key || c.key) {
        char err[600];
        if (!c.server_key || !c.key) {
            fprintf(stderr, "handoff: CURVE needs both --server-key and --key\n");
            return EXIT_USAGE;
        }
        if (hx_key_load_public(c.server_key, c.curve_server, err, sizeof err) ||
            hx_key_load(c.key, c.curve_public, c.curve_secret, err, sizeof err)) {
            fprintf(stderr, "handoff: %s\n", err);
            return EXIT_USAGE;
        }
    }
    static const char *const changes[] = {"accept", "decline", "start", "complete", "revoke"};
    const char *change = NULL;
    for (size_t i = 0; i < sizeof changes / sizeof *changes; i++)
        if (strcmp(cmd, changes[i]) == 0)
            change = changes[i];
    int clinic_cmd = !strcmp(cmd, "submit") || !strcmp(cmd, "inbox") || !strcmp(cmd, "status") || change;
    int admin_cmd = !strcmp(cmd, "dlq") || !strcmp(cmd, "health");
    if (!clinic_cmd && !admin_cmd) {
        fprintf(stderr, "handoff: unknown command '%s' (submit, inbox, status, accept, decline, start, complete, "
                        "revoke, dlq, health; see --help)\n", cmd);
        return EXIT_USAGE;
    }
    int admin_given = c.admin || hx_opt_pick(NULL, "HANDOFF_ADMIN", NULL);
    c.broker = hx_opt_pick(c.broker, "HANDOFF_BROKER", "tcp://127.0.0.1:5555");
    c.clinic = hx_opt_pick(c.clinic, "HANDOFF_CLINIC", NULL);
    c.home = hx_opt_pick(c.home, "HANDOFF_HOME", NULL);
    c.admin = hx_opt_pick(c.admin, "HANDOFF_ADMIN", "operator");
    if (hx_opt_u32("handoff", "--timeout-ms", hx_opt_pick(timeout, "HANDOFF_TIMEOUT_MS", "3000"), 100, 600000,
                   &c.timeout_ms))
        return EXIT_USAGE;
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;

    if (admin_cmd) {
        /* dlq always speaks as the admin; health as the clinic when one is named (and no
         * admin was asked for), so a clinic can check the broker without operator rights. */
        int as_admin = strcmp(cmd, "dlq") == 0 || admin_given || !c.clinic;
        const char *name = as_admin ? c.admin : c.clinic;
        if (!hx_name_valid(name)) {
            fprintf(stderr, "handoff: %s: must be 1 to %d characters of [A-Za-z0-9._-], got '%s'\n",
                    as_admin ? "--admin" : "--clinic", HX_NAME_MAX, name);
            return EXIT_USAGE;
        }
        int rc = strcmp(cmd, "dlq") == 0 ? cmd_dlq(&c, nargs, args) : cmd_health(&c, nargs, as_admin);
        hx_client_destroy(&c.client);
        return rc;
    }

    if (!c.clinic) {
        fprintf(stderr, "handoff: --clinic ID is required (or HANDOFF_CLINIC)\n");
        return EXIT_USAGE;
    }
    if (!hx_name_valid(c.clinic)) {
        fprintf(stderr, "handoff: --clinic: must be 1 to %d characters of [A-Za-z0-9._-], got '%s'\n", HX_NAME_MAX,
                c.clinic);
        return EXIT_USAGE;
    }
    if (db_open(&c)) {
        sqlite3_close(c.db);
        return EXIT_FAIL;
    }
    int rc;
    if (strcmp(cmd, "submit") == 0)
        rc = cmd_submit(&c, nargs, args);
    else if (strcmp(cmd, "inbox") == 0)
        rc = cmd_inbox(&c, nargs);
    else if (change)
        rc = cmd_change(&c, change, nargs, args);
    else
        rc = cmd_status(&c, nargs, args);
    hx_client_destroy(&c.client);
    sqlite3_close(c.db);
    return rc;
}
