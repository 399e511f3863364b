/* Integration: `handoff admin backup` and `handoff admin restore` (services/cli/cli_cmd_backup.c).
 *   restored_network_hands_off_everything_exactly_once
 *                 a durable broker (sealed log, audit log) with intake, triage and scheduling;
 *                 1,000 referrals submitted from a thread while the backup runs in the middle;
 *                 the bundle restored into a fresh directory and a new network started from
 *                 it: every referral the broker had acked before the backup began comes out of
 *                 the pipeline, nothing is delivered twice; then all 1,000 are resubmitted (as
 *                 clients resend what they cannot see answered) and each comes out exactly
 *                 once; the audit series verify against the restored log
 *   wrong_key, truncated_bundle, flipped_byte, appended_bytes, non_empty_into
 *                 each refused with its own message, nothing left behind
 *   list_checks_without_writing
 *                 --list prints the manifest and checks every file, writing nothing
 *
 * Every wait is for a condition with a deadline. The submitting thread paces itself (1 ms
 * between referrals) so that the backup, started after the first 300 acks, runs while
 * referrals keep arriving. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hx_client.h"
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_refjson.h"
#include "hx_spawn.h"
#include "hx_store.h"
#include "referral.pb-c.h"

#define N_REFERRALS 1000
#define BACKUP_AFTER 300
#define START "2026-11-23T08:00"
#define WAIT_MS 120000

static net_t net, net2;                 /* the original network; the restored one */

static void setup(void)
{
    net_init(&net);
    net_init(&net2);
}

static void teardown(void)
{
    int bad2 = net_stop_all(&net2), bad = net_stop_all(&net);   /* both stopped, whatever happens */
    net_fini_verdict(bad2, net2.dir);
    net_fini_verdict(bad, net.dir);
}

TestSuite(backup, .init = setup, .fini = teardown, .timeout = 600);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs `handoff ARGS...` (NULL-terminated); stdout and stderr into out; the exit code. */
static int handoff(char *out, size_t cap, const char *const args[])
{
    const char *argv[40] = {net_bin("services/cli/handoff")};
    size_t k = 1;
    for (size_t i = 0; args[i] && k < 39; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    static char err[1 << 16];
    int code = -1;
    hx_spawn_opts_t o = {.argv = argv, .out_pipe = true, .err_pipe = true};
    cr_assert_eq(hx_spawn_run(&o, out, cap, err, sizeof err, &code), 0, "cannot start %s", argv[0]);
    size_t len = strlen(out);
    snprintf(out + len, cap - len, "%s", err);
    return code;
}

static void make_key(const char *path)
{
    char out[4096];
    const char *args[] = {"datakey", path, NULL};
    cr_assert_eq(handoff(out, sizeof out, args), 0, "datakey: %s", out);
}

/* ---- the referrals -------------------------------------------------------------------------- */

static void gen(const char *out, const char *ndjson, int referrals, int seed)
{
    char n[16], s[16];
    snprintf(n, sizeof n, "%d", referrals);
    snprintf(s, sizeof s, "%d", seed);
    const char *argv[] = {net_bin("services/gen/handoff-gen"), "--clinics", "40", "--therapists", "400",
                          "--referrals", n, "--seed", s, "--rules", net_src("services/triage/rules.json"),
                          "--out", out, "--ndjson", ndjson, NULL};
    int code = -1;
    cr_assert_eq(hx_spawn_run(&(hx_spawn_opts_t){.argv = argv}, NULL, 0, NULL, 0, &code), 0);
    cr_assert_eq(code, 0, "handoff-gen failed");
}

typedef struct {
    hx_msg_t msgs[N_REFERRALS];
    uint8_t *bufs[N_REFERRALS];
    char rids[N_REFERRALS][HX_REFERRAL_ID_LEN + 1];
    size_t n;
} referrals_t;

static referrals_t refs;

/* The generated referrals as clinic-a sends them (referrer clinic-a, routine). */
static void load_referrals(const char *ndjson)
{
    FILE *f = fopen(ndjson, "r");
    cr_assert_not_null(f);
    char *line = NULL;
    size_t cap = 0;
    refs.n = 0;
    while (refs.n < N_REFERRALS && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        cr_assert_not_null(j);
        json_object_set_new(json_object_get(j, "referrer"), "clinic_id", json_string("clinic-a"));
        json_object_set_new(j, "priority", json_string("routine"));
        static hx_errors_t errs;
        hx_errors_clear(&errs);
        Handoff__Referral *r = hx_referral_from_json(j, &errs);
        cr_assert_not_null(r);
        hx_msg_t *m = &refs.msgs[refs.n];
        memset(m, 0, sizeof *m);
        hx_submission_id("clinic-a", r->ref, m->id);
        hx_referral_id(m->id, refs.rids[refs.n]);
        size_t len = handoff__referral__get_packed_size(r);
        refs.bufs[refs.n] = malloc(len);
        handoff__referral__pack(r, refs.bufs[refs.n]);
        m->to_kind = HX_TO_SERVICE;
        m->to = "intake";
        m->type = "handoff.Referral";
        m->payload = refs.bufs[refs.n];
        m->payload_len = len;
        hx_referral_free(r);
        json_decref(j);
        refs.n++;
    }
    free(line);
    fclose(f);
    cr_assert_eq(refs.n, N_REFERRALS);
}

static void free_referrals(void)
{
    for (size_t i = 0; i < refs.n; i++)
        free(refs.bufs[i]);
    refs.n = 0;
}

/* The submitting thread: one referral at a time, each answered "accepted" (after the broker's
 * fdatasync) before the next; acked counts them. */
typedef struct {
    const char *endpoint;
    atomic_size_t acked;
    char err[512];
} submitter_t;

static void *submit_run(void *arg)
{
    submitter_t *s = arg;
    hx_client_opts_t o = {.endpoint = s->endpoint, .clinic = "clinic-a", .role = HX_ROLE_CLINIC, .timeout_ms = 10000};
    hx_client_t *c = hx_client_connect(&o, s->err, sizeof s->err);
    if (!c)
        return NULL;
    for (size_t i = 0; i < refs.n; i++) {
        int rc = hx_client_submit(c, &refs.msgs[i], 1);
        if (rc != 0) {
            snprintf(s->err, sizeof s->err, "referral %zu: %s: %s", i, hx_strerror(rc), hx_client_error(c));
            break;
        }
        atomic_store(&s->acked, i + 1);
        struct timespec pace = {0, 1000000};
        nanosleep(&pace, NULL);
    }
    hx_client_destroy(&c);
    return NULL;
}

/* ---- what the restored network delivers ------------------------------------------------------ */

/* Every message taken out of the mailboxes, by what it says: key -> times seen. A key names a
 * status update (referral, status, event, who, bookings) or a handoff (receiving clinic,
 * referral, discipline); the same key twice is a delivery made twice. */
static json_t *seen;
/* referral id -> true once a status update took it out of the pipeline (booked, on hold or
 * sent back) */
static json_t *out_of_pipeline;
/* "clinic|referral|discipline" of every booking a status update named, and of every handoff */
static json_t *booked, *handed;

static void count(const char *key)
{
    json_t *v = json_object_get(seen, key);
    json_object_set_new(seen, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

static void note_status(const Handoff__StatusUpdate *u)
{
    char key[1024], books[512] = "";
    for (size_t i = 0; i < u->n_bookings; i++) {
        const Handoff__Booking *b = u->bookings[i];
        size_t l = strlen(books);
        snprintf(books + l, sizeof books - l, "%s/%d;", b->clinic_id, (int)b->discipline);
        char bk[256];
        snprintf(bk, sizeof bk, "%s|%s|%d", b->clinic_id, u->referral_id, (int)b->discipline);
        json_object_set_new(booked, bk, json_true());
    }
    snprintf(key, sizeof key, "status|%s|%d|%s|%s|%d|%s", u->referral_id, (int)u->status, u->event, u->by,
             (int)u->refused, books);
    count(key);
    bool booked_or_held = u->status == HANDOFF__TASK_STATUS__TASK_READY || u->status == HANDOFF__TASK_STATUS__TASK_ON_HOLD;
    if (!u->refused && (booked_or_held || u->status == HANDOFF__TASK_STATUS__TASK_REJECTED))
        json_object_set_new(out_of_pipeline, u->referral_id, json_true());
}

/* Fetches and acks everything in c's mailbox (clinic), noting each message; returns how many. */
static size_t drain(hx_client_t *c, const char *clinic)
{
    size_t got = 0;
    for (;;) {
        hx_batch_t *b = NULL;
        cr_assert_eq(hx_client_fetch(c, 1000, &b), 0, "%s: %s", clinic, hx_client_error(c));
        if (b->count == 0) {
            hx_batch_destroy(&b);
            return got;
        }
        uint8_t (*ids)[16] = calloc(b->count, 16);
        for (size_t i = 0; i < b->count; i++) {
            const hx_msg_t *m = &b->msgs[i];
            memcpy(ids[i], m->id, 16);
            if (strcmp(m->type, "handoff.StatusUpdate") == 0) {
                Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
                cr_assert_not_null(u);
                if (strcmp(clinic, "clinic-a") == 0)
                    note_status(u);
                handoff__status_update__free_unpacked(u, NULL);
            } else if (strcmp(m->type, "handoff.Handoff") == 0) {
                Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload_len, m->payload);
                cr_assert_not_null(h);
                char key[512];
                int d = h->booking ? (int)h->booking->discipline : -1;
                snprintf(key, sizeof key, "handoff|%s|%s|%d", clinic, h->referral_id, d);
                count(key);
                snprintf(key, sizeof key, "%s|%s|%d", clinic, h->referral_id, d);
                json_object_set_new(handed, key, json_true());
                handoff__handoff__free_unpacked(h, NULL);
            }
        }
        cr_assert_eq(hx_client_ack(c, (const uint8_t(*)[16])ids, b->count), 0, "%s", hx_client_error(c));
        free(ids);
        got += b->count;
        hx_batch_destroy(&b);
    }
}

/* The receiving clinics of the generated directory. */
static size_t clinic_ids(const char *directory, char ids[][64], size_t cap)
{
    json_t *d = json_load_file(directory, 0, NULL);
    cr_assert_not_null(d, "%s", directory);
    size_t i, n = 0;
    json_t *c;
    json_array_foreach(json_object_get(d, "clinics"), i, c)
        if (n < cap)
            snprintf(ids[n++], 64, "%s", json_string_value(json_object_get(c, "id")));
    json_decref(d);
    return n;
}

/* Messages waiting or in flight in the broker's service queues (admin stats). */
static uint64_t in_queues(hx_client_t *admin)
{
    char *text = NULL;
    cr_assert_eq(hx_client_stats(admin, &text), 0, "%s", hx_client_error(admin));
    json_t *s = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(s);
    uint64_t waiting = 0;
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(s, "queues"), i, q)
        waiting += (uint64_t)json_integer_value(json_object_get(q, "depth")) +
                   (uint64_t)json_integer_value(json_object_get(q, "inflight"));
    json_decref(s);
    return waiting;
}

typedef struct {
    hx_client_t *admin, *a;
    hx_client_t *recv[64];
    char (*ids)[64];
    size_t n_recv;
    size_t from, to;                    /* the referrals [from, to) must come out */
} pipeline_t;

/* Drains every mailbox; true once referrals [from, to) came out and the queues are empty. */
static bool pipeline_done(void *arg)
{
    pipeline_t *p = arg;
    drain(p->a, "clinic-a");
    for (size_t i = 0; i < p->n_recv; i++)
        drain(p->recv[i], p->ids[i]);
    for (size_t i = p->from; i < p->to; i++)
        if (!json_object_get(out_of_pipeline, refs.rids[i]))
            return false;
    return in_queues(p->admin) == 0;
}

static size_t missing_from(const pipeline_t *p, char *first, size_t cap)
{
    size_t n = 0;
    for (size_t i = p->from; i < p->to; i++)
        if (!json_object_get(out_of_pipeline, refs.rids[i]) && n++ == 0)
            snprintf(first, cap, "%s", refs.rids[i]);
    return n;
}

/* Nothing was delivered twice, and every booking a status named reached its clinic. */
static void assert_exactly_once(const char *when)
{
    const char *key;
    json_t *v;
    json_object_foreach(seen, key, v)
        cr_assert_eq(json_integer_value(v), 1, "%s: delivered %lld times: %s", when, (long long)json_integer_value(v),
                     key);
    json_object_foreach(booked, key, v)
        cr_assert_not_null(json_object_get(handed, key), "%s: booked but never handed off: %s", when, key);
}

Test(backup, restored_network_hands_off_everything_exactly_once)
{
    char gen_dir[600], nd[600], dir_json[700], key[600], data[600], audit[600], sched_audit[600];
    snprintf(gen_dir, sizeof gen_dir, "%s/gen", net2.dir);    /* kept for the restored network */
    snprintf(nd, sizeof nd, "%s/referrals.ndjson", net.dir);
    snprintf(dir_json, sizeof dir_json, "%s/directory.json", gen_dir);
    snprintf(key, sizeof key, "%s/data.key", net2.dir);        /* kept: the original's dir goes */
    snprintf(data, sizeof data, "%s/data", net.dir);
    snprintf(audit, sizeof audit, "%s/data/audit.jsonl", net.dir);
    snprintf(sched_audit, sizeof sched_audit, "%s/scheduling-audit.jsonl", net.dir);
    gen(gen_dir, nd, N_REFERRALS, 21);
    load_referrals(nd);
    make_key(key);
    static char ids[64][64];
    size_t n_ids = clinic_ids(dir_json, ids, 64);
    cr_assert_gt(n_ids, 0);

    /* the original network: durable, sealed, audited */
    const char *bextra[] = {"--data", data, "--data-key", key, "--audit", audit, NULL};
    net_start_broker(&net, bextra);
    net_start_front(&net);
    const char *sextra[] = {"--directory", dir_json, "--audit", sched_audit, NULL};
    net_start_scheduling(&net, "scheduling", START, NULL, sextra);

    submitter_t sub = {.endpoint = net.endpoint};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, submit_run, &sub), 0);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (atomic_load(&sub.acked) < BACKUP_AFTER && !sub.err[0] && now_ms() < deadline)
        usleep(2000);
    cr_assert_geq(atomic_load(&sub.acked), BACKUP_AFTER, "submitting stalled: %s", sub.err);

    /* the backup, while referrals keep arriving */
    size_t acked_before = atomic_load(&sub.acked);
    char bundle[600], out[1 << 16];
    snprintf(bundle, sizeof bundle, "%s/handoff.hxb", net2.dir);
    const char *bk[] = {"admin", "backup", bundle, "--broker-data", data, "--audit", audit, "--audit", sched_audit,
                        "--db-dir", net.dir, "--key", key, NULL};
    uint64_t t0 = now_ms();
    int rc = handoff(out, sizeof out, bk);
    uint64_t backup_ms = now_ms() - t0;
    size_t acked_after = atomic_load(&sub.acked);
    cr_assert_eq(rc, 0, "admin backup exited %d: %s", rc, out);
    struct stat st;
    cr_assert_eq(stat(bundle, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "the bundle is mode %o", st.st_mode & 0777);
    fprintf(stderr, "backup: %zu referrals acked before it, %zu after it (%llu ms, %lld bytes): %s", acked_before,
            acked_after, (unsigned long long)backup_ms, (long long)st.st_size, out);
    cr_expect_gt(acked_after, acked_before, "no referral was accepted while the backup ran: it did not run under load");
    pthread_join(t, NULL);
    cr_assert_str_empty(sub.err, "submitting: %s", sub.err);
    cr_assert_eq(atomic_load(&sub.acked), N_REFERRALS);
    cr_assert_eq(net_stop_all(&net), 0, "the original network did not stop cleanly");

    /* restore into a fresh directory */
    char into[600];
    snprintf(into, sizeof into, "%s/restored", net2.dir);
    const char *rs[] = {"admin", "restore", bundle, "--key", key, "--into", into, "--data-key", key, NULL};
    rc = handoff(out, sizeof out, rs);
    cr_assert_eq(rc, 0, "admin restore exited %d: %s", rc, out);
    cr_assert(strstr(out, "handoff-broker --data") != NULL, "%s", out);

    /* a new network from it, on new ports */
    char rdata[700], raudit[700], rsched_audit[700], rintake[700], rsched[700];
    snprintf(rdata, sizeof rdata, "%s/broker", into);
    snprintf(raudit, sizeof raudit, "%s/audit/broker/audit.jsonl", into);
    snprintf(rsched_audit, sizeof rsched_audit, "%s/audit/%s/scheduling-audit.jsonl", into, strrchr(net.dir, '/') + 1);
    snprintf(rintake, sizeof rintake, "%s/db/intake.db", into);
    snprintf(rsched, sizeof rsched, "%s/db/scheduling.db", into);
    cr_assert(net_file_exists(raudit) && net_file_exists(rsched_audit) && net_file_exists(rintake) &&
              net_file_exists(rsched), "restored files missing: %s", out);
    const char *rbextra[] = {"--data", rdata, "--data-key", key, "--audit", raudit, NULL};
    net_start_broker(&net2, rbextra);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", net2.endpoint, "--db", rintake, NULL};
    const char *triage[] = {net_bin("services/triage/handoff-triage"), "--broker", net2.endpoint, "--rules",
                            net_src("services/triage/rules.json"), NULL};
    net_spawn(&net2, "intake", intake);
    net_spawn(&net2, "triage", triage);
    const char *rsextra[] = {"--directory", dir_json, "--audit", rsched_audit, NULL};
    net_start_scheduling(&net2, "scheduling", START, rsched, rsextra);

    seen = json_object();
    out_of_pipeline = json_object();
    booked = json_object();
    handed = json_object();
    pipeline_t p = {.admin = net_session(&net2, HX_ROLE_ADMIN, "ops"), .a = net_session(&net2, HX_ROLE_CLINIC, "clinic-a"),
                    .ids = ids, .n_recv = n_ids, .from = 0, .to = acked_before};
    for (size_t i = 0; i < n_ids; i++)
        p.recv[i] = net_session(&net2, HX_ROLE_CLINIC, ids[i]);

    /* every referral acked before the backup began comes out, from the backup alone */
    char first[64] = "";
    bool done = net_wait(pipeline_done, &p, WAIT_MS);
    cr_assert(done, "%zu of the %zu referrals acked before the backup did not come out of the restored network "
              "(the first: %s; logs in %s)", missing_from(&p, first, sizeof first), acked_before, first, net2.dir);
    assert_exactly_once("from the backup");
    size_t from_backup = json_object_size(out_of_pipeline);

    /* clients resend all 1,000: the dedup window makes it exactly once */
    size_t failed = 0;
    cr_assert_eq(hx_client_submit_many(p.a, refs.msgs, refs.n, 64, &failed), 0, "%s", hx_client_error(p.a));
    cr_assert_eq(failed, 0);
    p.to = N_REFERRALS;
    done = net_wait(pipeline_done, &p, WAIT_MS);
    cr_assert(done, "%zu of the 1,000 referrals did not come out after the resubmission (the first: %s; logs in %s)",
              missing_from(&p, first, sizeof first), first, net2.dir);
    assert_exactly_once("after the resubmission");
    fprintf(stderr, "restore: %zu referrals out of the pipeline from the backup alone (%zu acked before it), %zu after "
            "the resubmission; %zu deliveries, none twice\n", from_backup, acked_before,
            json_object_size(out_of_pipeline), json_object_size(seen));
    cr_assert_eq(json_object_size(out_of_pipeline), N_REFERRALS);

    /* the audit series, continued by the restored programs, verify */
    hx_client_destroy(&p.admin);
    hx_client_destroy(&p.a);
    for (size_t i = 0; i < n_ids; i++)
        hx_client_destroy(&p.recv[i]);
    pid_t bpid = net_pid(&net2, "broker");
    cr_assert_eq(net_stop(&net2, bpid, SIGTERM), 0, "the restored broker did not stop cleanly");
    const char *av[] = {"audit", "verify", raudit, rdata, NULL};
    rc = handoff(out, sizeof out, av);
    cr_assert_eq(rc, 0, "audit verify of the restored broker's series: %s", out);
    const char *sv[] = {"audit", "verify", rsched_audit, NULL};
    rc = handoff(out, sizeof out, sv);
    cr_assert_eq(rc, 0, "audit verify of the restored scheduling series: %s", out);

    json_decref(seen);
    json_decref(out_of_pipeline);
    json_decref(booked);
    json_decref(handed);
    free_referrals();
}

/* ---- refusals --------------------------------------------------------------------------------- */

/* A small installation to back up, without a network: a log with a few transactions, an
 * audit file with a torn last line, and a SQLite file; then its bundle in net2.dir. */
static char small_key[600], small_bundle[600];

static void small_backup(void)
{
    char data[600], audit[600], db[600], err[512];
    snprintf(data, sizeof data, "%s/data", net.dir);
    snprintf(audit, sizeof audit, "%s/audit.jsonl", net.dir);
    snprintf(db, sizeof db, "%s/clinic.db", net.dir);
    snprintf(small_key, sizeof small_key, "%s/backup.key", net2.dir);
    snprintf(small_bundle, sizeof small_bundle, "%s/small.hxb", net2.dir);
    make_key(small_key);
    hx_store_log_config_t c = {.dir = data};
    hx_store_t *s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(s->ops->recover(s, NULL, NULL), 0);
    for (int i = 0; i < 20; i++) {
        uint8_t msg[4000];
        memset(msg, i, sizeof msg);
        uint64_t h, seq;
        cr_assert_eq(s->ops->begin(s), 0);
        cr_assert_eq(s->ops->put(s, msg, sizeof msg, &h), 0);
        cr_assert_eq(s->ops->end(s, &seq), 0);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    FILE *f = fopen(audit, "w");
    cr_assert_not_null(f);
    fputs("{\"line\":1}\n{\"line\":2}\n{\"torn", f);
    fclose(f);
    sqlite3 *q = NULL;
    cr_assert_eq(sqlite3_open(db, &q), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(q, "CREATE TABLE t(a); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                                 "WHERE i < 2000) INSERT INTO t SELECT randomblob(100) FROM n;", NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(q);
    char out[1 << 14];
    const char *bk[] = {"admin", "backup", small_bundle, "--broker-data", data, "--audit", audit, "--db", db, "--key",
                        small_key, NULL};
    int rc = handoff(out, sizeof out, bk);
    cr_assert_eq(rc, 0, "%s", out);
    struct stat st;
    cr_assert_eq(stat(small_bundle, &st), 0);
    cr_assert_gt(st.st_size, 3 * 65536, "the bundle should span several chunks (%lld bytes)", (long long)st.st_size);
}

/* Restores bundle with key into net2.dir/into: the exit code, the output in out; and that
 * nothing was left when it failed. */
static int restore_into(const char *bundle, const char *key, char *out, size_t cap)
{
    char into[600], tmp[700];
    snprintf(into, sizeof into, "%s/into", net2.dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", into);
    const char *rs[] = {"admin", "restore", bundle, "--key", key, "--into", into, NULL};
    int rc = handoff(out, cap, rs);
    if (rc != 0) {
        cr_assert(!net_file_exists(tmp), "%s was left behind", tmp);
        cr_assert(!net_file_exists(into), "%s was left behind", into);
    }
    return rc;
}

static void copy_bundle(const char *to, size_t keep, long flip_at)
{
    FILE *in = fopen(small_bundle, "rb"), *out = fopen(to, "wb");
    cr_assert(in && out);
    int ch;
    size_t n = 0;
    while ((ch = fgetc(in)) != EOF && n < keep) {
        if ((long)n == flip_at)
            ch ^= 0x01;
        fputc(ch, out);
        n++;
    }
    fclose(in);
    fclose(out);
}

Test(backup, wrong_key)
{
    small_backup();
    char other[600], out[1 << 14];
    snprintf(other, sizeof other, "%s/other.key", net2.dir);
    make_key(other);
    cr_assert_eq(restore_into(small_bundle, other, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "was made with a different key") != NULL, "%s", out);
    /* and the right key restores it, the torn audit line left out */
    cr_assert_eq(restore_into(small_bundle, small_key, out, sizeof out), 0, "%s", out);
    char audit[700];
    snprintf(audit, sizeof audit, "%s/into/audit/%s/audit.jsonl", net2.dir, strrchr(net.dir, '/') + 1);
    FILE *f = fopen(audit, "r");
    cr_assert_not_null(f, "%s: %s", audit, out);
    char text[256] = "";
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    cr_assert_str_eq(text, "{\"line\":1}\n{\"line\":2}\n");
    struct stat st;
    cr_assert_eq(stat(audit, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(backup, truncated_bundle)
{
    small_backup();
    char cut[600], out[1 << 14];
    snprintf(cut, sizeof cut, "%s/cut.hxb", net2.dir);
    /* at a chunk boundary: the header, then one whole chunk */
    copy_bundle(cut, 48 + 4 + 65536 + 17, -1);
    cr_assert_eq(restore_into(cut, small_key, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is truncated: it ends at byte 65605 without its final chunk") != NULL, "%s", out);
    /* inside a chunk */
    copy_bundle(cut, 100000, -1);
    cr_assert_eq(restore_into(cut, small_key, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is truncated: it ends at byte 100000, inside chunk 2") != NULL, "%s", out);
}

Test(backup, flipped_byte)
{
    small_backup();
    char bad[600], out[1 << 14];
    snprintf(bad, sizeof bad, "%s/bad.hxb", net2.dir);
    copy_bundle(bad, SIZE_MAX, 100000);
    cr_assert_eq(restore_into(bad, small_key, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is damaged or altered: chunk 2 (bytes 65605 to") != NULL, "%s", out);
    /* in the header: the key id no longer matches */
    copy_bundle(bad, SIZE_MAX, 20);
    cr_assert_eq(restore_into(bad, small_key, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "different key") != NULL, "%s", out);
}

Test(backup, appended_bytes)
{
    small_backup();
    char bad[600], out[1 << 14];
    snprintf(bad, sizeof bad, "%s/long.hxb", net2.dir);
    copy_bundle(bad, SIZE_MAX, -1);
    FILE *f = fopen(bad, "ab");
    fputs("more", f);
    fclose(f);
    cr_assert_eq(restore_into(bad, small_key, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "has bytes after its final chunk") != NULL, "%s", out);
}

Test(backup, non_empty_into)
{
    small_backup();
    char into[600], file[700], out[1 << 14];
    snprintf(into, sizeof into, "%s/into", net2.dir);
    snprintf(file, sizeof file, "%s/keep-me", into);
    cr_assert_eq(mkdir(into, 0700), 0);
    FILE *f = fopen(file, "w");
    fclose(f);
    const char *rs[] = {"admin", "restore", small_bundle, "--key", small_key, "--into", into, NULL};
    cr_assert_eq(handoff(out, sizeof out, rs), 1, "%s", out);
    cr_assert(strstr(out, "is not empty (it holds keep-me)") != NULL, "%s", out);
    cr_assert(net_file_exists(file));
    /* an empty one is fine */
    cr_assert_eq(unlink(file), 0);
    cr_assert_eq(handoff(out, sizeof out, rs), 0, "%s", out);
    char seg[800];
    snprintf(seg, sizeof seg, "%s/broker/%020d.log", into, 1);
    cr_assert(net_file_exists(seg), "%s", out);
}

Test(backup, list_checks_without_writing)
{
    small_backup();
    char out[1 << 14];
    const char *ls[] = {"admin", "restore", "--list", small_bundle, "--key", small_key, NULL};
    cr_assert_eq(handoff(out, sizeof out, ls), 0, "%s", out);
    cr_assert(strstr(out, "broker-log") && strstr(out, "sqlite") && strstr(out, "db/clinic.db") &&
              strstr(out, "all 4 file(s) match the manifest"), "%s", out);
    DIR *d = opendir(net2.dir);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(n, 2, "--list wrote something into %s", net2.dir);   /* the key and the bundle */
}
