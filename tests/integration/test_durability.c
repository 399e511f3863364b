/* Integration: the durable broker (--data) on 127.0.0.1 with the real programs.
 *   crash_loop            kill -9 the broker at random moments under load, restart it on the
 *                         same port and data directory, HX_CRASH_CYCLES times (default 20):
 *                         nothing accepted is lost, no sequence number arrives twice under
 *                         different message ids
 *   restart_keeps_state   service queues, mailboxes, dead letters and the dedup set survive a
 *                         SIGTERM and a SIGKILL restart
 *   settled_ids_are_remembered_across_restarts
 *                         an acked message resubmitted with its id never comes back, before
 *                         or after restarts
 *   poison_message        retries with exponential backoff, then the dead-letter queue;
 *                         replay and purge
 *   worker_bursts_commit_or_nack_together
 *                         a worker's delivered burst in one transaction: a failed commit
 *                         nacks it all with no output sent; a failing message alone is nacked
 *   worker_posts_thousands_at_once_none_dropped
 *                         5,000 posts at once (a retry tick with a long wait list) fill the
 *                         worker's send queue; each still arrives, once and in order
 *   a_worker_back_from_a_long_tick_keeps_its_posts_and_says_hello_once
 *                         a tick that holds the loop past the liveness window: the session is
 *                         gone, its posts go again in the next one (once each), one HELLO
 *   disk_full_then_space_returns, fsync_failure_refuses_until_restart
 *                         write faults injected with --test-faults
 *   cli_dlq               `handoff dlq ...` and `handoff health`: output and exit codes
 *   flipped_byte_in_acked_prefix_refuses, salvage_serves_every_readable_message,
 *   unacknowledged_tail_is_cut_and_every_accepted_message_served
 *                         one byte flipped in what was accepted: refused, named, untouched;
 *                         --salvage; a tail past the acknowledged end is still cut
 *   rekey_seals_every_held_message_anew
 *                         --rekey on a stopped broker's sealed log: served with the new key,
 *                         refused with the old, no old sealed byte left; refused while it runs
 *   audit_cut_tail_is_named_by_verify
 *                         the audit log's anchor in the durable log shows a cut tail
 *   audit_rotates_under_a_burst_and_verifies
 *                         a tiny --audit-max-bytes: several files, one chain; verify passes
 *                         (with the anchor), and names a rotated file once it is edited
 *
 * Every wait is on a condition with a generous deadline and no test has a timing upper
 * bound (they run on slow, noisy machines). The only sleeps are the crash loop's random
 * delays before each kill, and its load threads' short pauses between polls of an empty
 * mailbox or retries of a refused submit. */
#define _GNU_SOURCE                     /* strcasestr */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "harness.h"
#include "hx_client.h"
#include "hx_spawn.h"
#include "load.h"

#define WAIT_MS 30000                   /* deadline for a condition that should hold soon */

static net_t net;

/* The broker's arguments for the running test: fixed port, data directory, then extras. */
static char bind_ep[64], data_dir[512], faults[512];
static const char *bargs[32];

static void setup(void)
{
    net_init(&net);
    snprintf(data_dir, sizeof data_dir, "%s/data", net.dir);
    snprintf(faults, sizeof faults, "%s/faults", net.dir);
}

static void teardown(void)
{
    int bad = net_stop_all(&net);
    net_fini_verdict(bad, net.dir);
}

TestSuite(durability, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers ------------------------------------------------------------------------------ */


/* Starts the broker on a fixed port of 127.0.0.1 with --data; extra (NULL-terminated) is
 * appended. The same arguments are used by restart_broker. */
static void start_broker(const char *const extra[])
{
    snprintf(bind_ep, sizeof bind_ep, "tcp://127.0.0.1:%d", net_free_port());
    size_t k = 0;
    bargs[k++] = "--bind";
    bargs[k++] = bind_ep;
    bargs[k++] = "--data";
    bargs[k++] = data_dir;
    for (size_t i = 0; extra && extra[i] && k < 31; i++)
        bargs[k++] = extra[i];
    bargs[k] = NULL;
    net_start_broker_open(&net, bargs);
    cr_assert_str_eq(net.endpoint, bind_ep);
}

/* Stops the broker with sig (SIGKILL: without a word) and starts it again on the same port
 * and data directory; returns the old broker's wait status. */
static int restart_broker(int sig)
{
    pid_t pid = net_pid(&net, "broker");
    cr_assert_gt(pid, 0, "the broker is not running (see %s/broker.log)", net.dir);
    int status = 0;
    if (sig == SIGKILL)
        net_kill9(&net, pid);
    else
        status = net_stop(&net, pid, sig);
    net_start_broker_open(&net, bargs);
    return status;
}

/* hx-test-worker serving `service` in `mode`, forwarding to mailbox `to`; log may be NULL. */
static pid_t start_worker(const char *mode, const char *service, const char *to, const char *credit,
                          const char *log)
{
    const char *argv[] = {net_bin("tests/hx-test-worker"), "--broker", net.endpoint, "--mode", mode, "--service",
                          service, "--to", to, "--credit", credit, log ? "--log" : NULL, log, NULL};
    char name[48];
    snprintf(name, sizeof name, "%s-%s", mode, service);
    return net_spawn(&net, name, argv);
}


/* A message with a fresh random id; payload must outlive it (a literal, or static). */
static hx_msg_t message(hx_addr_kind_t kind, const char *to, const char *payload)
{
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = kind;
    m.to = to;
    m.type = "test.n";
    m.payload = (const uint8_t *)payload;
    m.payload_len = strlen(payload);
    return m;
}

static void submit_ok(hx_client_t *c, const hx_msg_t *m)
{
    int rc = hx_client_submit(c, m, 1);
    cr_assert_eq(rc, 0, "submit to %s: %s: %s", m->to, hx_strerror(rc), hx_client_error(c));
}

static const char *hex(const uint8_t id[HX_ID_LEN])
{
    static char buf[4][2 * HX_ID_LEN + 1];
    static int k;
    char *out = buf[k++ % 4];
    hx_id_hex(id, out);
    return out;
}

static bool contains_ci(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

/* What a test keeps of a dead letter. */
typedef struct {
    uint32_t attempts;
    char reason[256];
    char to[HX_NAME_MAX + 1];
} dead_copy_t;

/* How many entries of the dead-letter queue carry id (0 when the list fails); the first is
 * copied (reason truncated) when out is not NULL. */
static size_t dlq_count(hx_client_t *admin, const uint8_t id[HX_ID_LEN], dead_copy_t *out)
{
    hx_dead_list_t *l = NULL;
    if (hx_client_dlq_list(admin, &l) != 0)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (memcmp(l->items[i].msg.id, id, HX_ID_LEN) != 0)
            continue;
        if (n++ == 0 && out) {
            out->attempts = l->items[i].attempts;
            snprintf(out->reason, sizeof out->reason, "%s", l->items[i].reason ? l->items[i].reason : "");
            snprintf(out->to, sizeof out->to, "%s", l->items[i].msg.to ? l->items[i].msg.to : "");
        }
    }
    hx_dead_list_destroy(&l);
    return n;
}

typedef struct {
    hx_client_t *admin;
    const uint8_t *id;
} dlq_wait_t;

static bool in_dlq(void *arg)
{
    dlq_wait_t *w = arg;
    return dlq_count(w->admin, w->id, NULL) > 0;
}

/* Messages fetched from one mailbox, kept (ids and payloads) until acked together. */
typedef struct {
    hx_client_t *c;
    size_t n;
    uint8_t ids[64][HX_ID_LEN];
    char payloads[64][128];
    const uint8_t *until;               /* stop when this id has been fetched */
    size_t want;                        /* or when this many have been */
} fetched_t;

static bool fetch_more(void *arg)
{
    fetched_t *f = arg;
    hx_batch_t *b = NULL;
    if (hx_client_fetch(f->c, 64, &b) == 0) {
        for (size_t i = 0; i < b->count && f->n < 64; i++) {
            memcpy(f->ids[f->n], b->msgs[i].id, HX_ID_LEN);
            size_t len = b->msgs[i].payload_len < 127 ? b->msgs[i].payload_len : 127;
            memcpy(f->payloads[f->n], b->msgs[i].payload, len);
            f->payloads[f->n][len] = '\0';
            f->n++;
        }
        hx_batch_destroy(&b);
    }
    for (size_t i = 0; f->until && i < f->n; i++)
        if (memcmp(f->ids[i], f->until, HX_ID_LEN) == 0)
            return true;
    return !f->until && f->n >= f->want;
}

static size_t fetched_count(const fetched_t *f, const uint8_t id[HX_ID_LEN])
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        n += memcmp(f->ids[i], id, HX_ID_LEN) == 0;
    return n;
}

static const char *fetched_payload(const fetched_t *f, const uint8_t id[HX_ID_LEN])
{
    for (size_t i = 0; i < f->n; i++)
        if (memcmp(f->ids[i], id, HX_ID_LEN) == 0)
            return f->payloads[i];
    return "(not fetched)";
}

/* A string member of a JSON object, "" when missing (so assertions compare, not crash). */
static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void fetched_ack(fetched_t *f)
{
    if (f->n)
        cr_assert_eq(hx_client_ack(f->c, (const uint8_t(*)[HX_ID_LEN])f->ids, f->n), 0, "ack: %s",
                     hx_client_error(f->c));
}

/* After `want` messages (or `until`) arrived, one more fetch: nothing else is waiting. */
static void fetch_exactly(fetched_t *f, const char *box)
{
    cr_assert(net_wait(fetch_more, f, WAIT_MS), "mailbox %s: %zu message(s) arrived, expected more (see %s)", box,
              f->n, net.dir);
    size_t before = f->n;
    const uint8_t *until = f->until;
    f->until = NULL;
    f->want = SIZE_MAX;
    fetch_more(f);
    f->until = until;
    cr_assert_eq(f->n, before, "mailbox %s holds %zu message(s) more than expected", box, f->n - before);
}

/* Lines of a hx-test-worker --log file for one id: attempts and CLOCK_MONOTONIC ms. */
typedef struct {
    size_t n;
    unsigned attempt[64];
    long long at[64];
} attempts_t;

static void read_log(const char *path, const uint8_t id[HX_ID_LEN], attempts_t *a)
{
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[256], h[65];
    unsigned att;
    long long at;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%u %lld %64s", &att, &at, h) == 3 && strcmp(h, hex(id)) == 0 && a->n < 64) {
            a->attempt[a->n] = att;
            a->at[a->n++] = at;
        }
    fclose(f);
}

typedef struct {
    const char *path;
    const uint8_t *id;
    size_t want;
} log_wait_t;

static bool log_has(void *arg)
{
    log_wait_t *w = arg;
    attempts_t a;
    read_log(w->path, w->id, &a);
    return a.n >= w->want;
}

static void write_faults(const char *what)
{
    FILE *f = fopen(faults, "w");
    cr_assert_not_null(f);
    fputs(what, f);
    cr_assert_eq(fclose(f), 0);
}

/* ---- a. crash loop ------------------------------------------------------------------------ */

/* ---- a. crash loop (the load: load.c) ---------------------------------------------------- */

Test(durability, crash_loop, .timeout = 7200)
{
    const char *env = getenv("HX_CRASH_CYCLES");
    int cycles = env && *env ? atoi(env) : 20;
    cr_assert_gt(cycles, 0, "HX_CRASH_CYCLES must be a positive number");
    env = getenv("HX_CRASH_SEED");
    unsigned seed = env && *env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
    fprintf(stderr, "crash-loop: seed=%u cycles=%d (HX_CRASH_SEED=%u repeats the kill timing)\n", seed, cycles,
            seed);

    /* Attempts are not what this test is about: a message in flight at several crashes must
     * not end as a dead letter. */
    const char *extra[] = {"--heartbeat-ms", "100", "--max-attempts", "1000", "--backoff-ms", "10",
                           "--backoff-max-ms", "100", "--log-level", "info", NULL};
    start_broker(extra);
    start_worker("echo", "echo", "sink", "16", NULL);
    start_worker("echo", "echo", "sink", "16", NULL);

    load_t *L = load_start(net.endpoint);
    cr_assert_not_null(L);
    int64_t t0 = net_mono_ms();
    for (int i = 0; i < cycles; i++) {
        net_nap_ms(50 + (long)(rand_r(&seed) % 351));      /* the random moment of the crash */
        restart_broker(SIGKILL);
        if ((i + 1) % 10 == 0) {
            size_t a, r;
            load_progress(L, &a, &r);
            fprintf(stderr, "crash-loop: %d/%d cycles, %zu acked, %zu received, %.1f s\n", i + 1, cycles, a, r,
                    (double)(net_mono_ms() - t0) / 1000.0);
        }
    }
    load_result_t res;
    load_finish(L, 600000, &res);
    fprintf(stderr, "crash-loop: cycles=%d acked=%zu received=%zu lost=%zu duplicated=%zu redelivered=%zu\n", cycles,
            res.acked, res.received, res.lost, res.duplicated, res.redelivered);
    fprintf(stderr, "crash-loop: %zu submit retries, %.1f s\n", res.submit_retries,
            (double)(net_mono_ms() - t0) / 1000.0);
    cr_assert_str_empty(res.fatal, "%s", res.fatal);
    cr_assert_gt(res.acked, 0, "nothing was accepted during the crash loop (see %s/broker.log)", net.dir);
    cr_expect(res.drained, "not every accepted message arrived after the last restart (%s)",
              res.stalled ? "nothing new for 60 s" : "600 s");
    cr_expect_eq(res.lost, 0, "%zu accepted message(s) lost (the seed is printed above)", res.lost);
    cr_expect_eq(res.duplicated, 0, "%zu sequence number(s) arrived under more than one message id",
                 res.duplicated);
}

/* ---- b. restart keeps state --------------------------------------------------------------- */

/* One cycle: a dead letter, a message waiting in a service queue with no worker, one in a
 * mailbox; the broker stopped with sig and started again; all of it is still there, and
 * resubmitting the ids accepted before the restart makes no second copy. */
static void restart_cycle(int cycle, int sig, const uint8_t *earlier_id, uint8_t dead_id[HX_ID_LEN])
{
    char poison[32], queue[32], box[32], out[32], log[512];
    snprintf(poison, sizeof poison, "poison%d", cycle);
    snprintf(queue, sizeof queue, "queued%d", cycle);
    snprintf(box, sizeof box, "box%d", cycle);
    snprintf(out, sizeof out, "out%d", cycle);
    snprintf(log, sizeof log, "%s/echo%d.attempts", net.dir, cycle);

    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_client_t *admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    pid_t failing = start_worker("fail", poison, "sink", "1", NULL);
    hx_msg_t dead = message(HX_TO_SERVICE, poison, "poison");
    submit_ok(p, &dead);
    dlq_wait_t dw = {admin, dead.id};
    cr_assert(net_wait(in_dlq, &dw, WAIT_MS), "cycle %d: %s never reached the dead-letter queue (see %s)", cycle,
              hex(dead.id), net.dir);
    net_stop(&net, failing, SIGTERM);

    hx_msg_t q = message(HX_TO_SERVICE, queue, "queued");
    hx_msg_t m = message(HX_TO_MAILBOX, box, "boxed");
    submit_ok(p, &q);
    submit_ok(p, &m);
    hx_client_destroy(&p);
    hx_client_destroy(&admin);

    int status = restart_broker(sig);
    if (sig == SIGTERM)
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGTERM: the broker should exit 0, status %d",
                  status);

    /* resubmits of ids accepted before the restart: accepted again */
    p = net_session(&net, HX_ROLE_CLINIC, "producer");
    admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    submit_ok(p, &q);
    submit_ok(p, &m);
    submit_ok(p, &dead);

    /* the mailbox holds its message, once */
    hx_client_t *bc = net_session(&net, HX_ROLE_CLINIC, box);
    fetched_t *f = calloc(1, sizeof *f);
    f->c = bc;
    f->want = 1;
    fetch_exactly(f, box);
    cr_assert_eq(fetched_count(f, m.id), 1, "cycle %d: the mailbox message after the restart", cycle);
    cr_assert_str_eq(fetched_payload(f, m.id), "boxed");
    fetched_ack(f);
    hx_client_destroy(&bc);

    /* the dead letter is still one dead letter, with its reason */
    dead_copy_t d;
    cr_assert_eq(dlq_count(admin, dead.id, &d), 1, "cycle %d: the dead letter after the restart", cycle);
    cr_expect(contains_ci(d.reason, "always fails"), "reason: '%s'", d.reason);
    cr_expect_eq(d.attempts, 2);
    cr_expect_str_eq(d.to, poison);
    if (earlier_id) {
        dead_copy_t e;
        cr_assert_eq(dlq_count(admin, earlier_id, &e), 1, "cycle %d: the dead letter of an earlier cycle", cycle);
        cr_expect_eq(e.attempts, 2);
        cr_expect(contains_ci(e.reason, "always fails"), "reason: '%s'", e.reason);
    }
    char text[8192];
    const char *list[] = {"--admin", "ops", "dlq", "list", NULL};
    cr_assert_eq(net_cli(&net, "lakeside", text, sizeof text, list), 0, "handoff dlq list (see %s/cli.log)",
                 net.dir);
    cr_expect(strstr(text, hex(dead.id)), "dlq list shows %s:\n%s", hex(dead.id), text);

    /* the queue holds its message, once: a sentinel submitted after the resubmit comes out
     * last (one worker, credit 1, oldest first), so every copy of q is in the log by then */
    hx_msg_t s = message(HX_TO_SERVICE, queue, "sentinel");
    submit_ok(p, &s);
    pid_t echo = start_worker("echo", queue, out, "1", log);
    hx_client_t *oc = net_session(&net, HX_ROLE_CLINIC, out);
    memset(f, 0, sizeof *f);
    f->c = oc;
    uint8_t q_out[HX_ID_LEN], s_out[HX_ID_LEN];
    hx_id_derive(q.id, 0, q_out);
    hx_id_derive(s.id, 0, s_out);
    f->until = s_out;
    fetch_exactly(f, out);
    cr_assert_eq(fetched_count(f, q_out), 1, "cycle %d: the queued message was not delivered after the restart",
                 cycle);
    cr_expect_str_eq(fetched_payload(f, q_out), "attempt=1;queued");
    fetched_ack(f);
    attempts_t a;
    read_log(log, q.id, &a);
    cr_expect_eq(a.n, 1, "cycle %d: the queued message was delivered %zu times (resubmit stored twice?)", cycle,
                 a.n);
    net_stop(&net, echo, SIGTERM);

    memcpy(dead_id, dead.id, HX_ID_LEN);
    free(f);
    hx_client_destroy(&oc);
    hx_client_destroy(&p);
    hx_client_destroy(&admin);
}

Test(durability, restart_keeps_state)
{
    const char *extra[] = {"--heartbeat-ms", "100", "--max-attempts", "2", "--backoff-ms", "20", NULL};
    start_broker(extra);
    uint8_t first[HX_ID_LEN], second[HX_ID_LEN];
    restart_cycle(1, SIGTERM, NULL, first);
    restart_cycle(2, SIGKILL, first, second);     /* cycle 1's dead letter lives through both */
}

/* ---- c. poison message -------------------------------------------------------------------- */

/* The dedup window remembers a message once it is settled (a held one is found by its entry):
 * a mailbox message fetched and acked, then resubmitted with its id, is answered ACCEPTED and
 * never reaches the mailbox again, right away and after a SIGKILL and a SIGTERM restart (the
 * window rebuilt from the segments' checkpoints and the settles after them). */
static void expect_not_again(hx_msg_t *m, const char *box, const char *when)
{
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    submit_ok(p, m);                                    /* a resubmit is answered, not refused */
    hx_client_t *bc = net_session(&net, HX_ROLE_CLINIC, box);
    fetched_t *f = calloc(1, sizeof *f);
    f->c = bc;
    f->want = 0;
    fetch_exactly(f, box);
    cr_expect_eq(f->n, 0, "%s: the settled message came back to %s %zu time(s)", when, box, f->n);
    free(f);
    hx_client_destroy(&bc);
    hx_client_destroy(&p);
}

Test(durability, settled_ids_are_remembered_across_restarts)
{
    start_broker(NULL);
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_msg_t m = message(HX_TO_MAILBOX, "settledbox", "once");
    submit_ok(p, &m);
    hx_client_destroy(&p);
    hx_client_t *bc = net_session(&net, HX_ROLE_CLINIC, "settledbox");
    fetched_t *f = calloc(1, sizeof *f);
    f->c = bc;
    f->until = m.id;
    fetch_exactly(f, "settledbox");
    cr_assert_eq(fetched_count(f, m.id), 1);
    fetched_ack(f);                                     /* settled once the ack is answered */
    free(f);
    hx_client_destroy(&bc);
    expect_not_again(&m, "settledbox", "right after the ack");
    restart_broker(SIGKILL);
    expect_not_again(&m, "settledbox", "after a SIGKILL restart");
    restart_broker(SIGTERM);
    expect_not_again(&m, "settledbox", "after a SIGTERM restart");
}

Test(durability, poison_message)
{
    const char *extra[] = {"--heartbeat-ms", "100", "--max-attempts", "4", "--backoff-ms", "100",
                           "--backoff-max-ms", "1000", NULL};
    start_broker(extra);
    char log[512], log2[512];
    snprintf(log, sizeof log, "%s/fail.attempts", net.dir);
    snprintf(log2, sizeof log2, "%s/echo.attempts", net.dir);
    pid_t failing = start_worker("fail", "work", "sink", "1", log);

    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_client_t *admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    hx_msg_t m = message(HX_TO_SERVICE, "work", "poison-payload");
    submit_ok(p, &m);
    dlq_wait_t dw = {admin, m.id};
    cr_assert(net_wait(in_dlq, &dw, WAIT_MS), "never reached the dead-letter queue (see %s)", net.dir);

    /* four deliveries, attempts 1..4, each gap at least the backoff of its step (100, 200,
     * 400 ms; 10% below for clock granularity). Only lower bounds: a slow machine may
     * stretch a gap, never shorten it; a backoff that does not grow fails the 200/400 bounds. */
    attempts_t a;
    read_log(log, m.id, &a);
    cr_assert_eq(a.n, 4, "expected exactly 4 deliveries, the log has %zu", a.n);
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(a.attempt[i], i + 1, "delivery %zu carries attempt %u", i + 1, a.attempt[i]);
    for (size_t i = 1; i < 4; i++) {
        long long gap = a.at[i] - a.at[i - 1], backoff = 100LL << (i - 1);
        cr_expect_geq(gap * 10, backoff * 9, "gap before attempt %zu: %lld ms, backoff %lld ms", i + 1, gap, backoff);
        fprintf(stderr, "poison_message: gap before attempt %zu: %lld ms (backoff %lld)\n", i + 1, gap, backoff);
    }
    dead_copy_t d;
    cr_assert_eq(dlq_count(admin, m.id, &d), 1);
    cr_expect(contains_ci(d.reason, "always fails"), "reason: '%s'", d.reason);
    cr_expect_eq(d.attempts, 4);
    cr_expect_str_eq(d.to, "work");

    /* show carries the payload */
    hx_dead_list_t *l = NULL;
    cr_assert_eq(hx_client_dlq_show(admin, m.id, &l), 0, "dlq show: %s", hx_client_error(admin));
    cr_assert_eq(l->count, 1);
    cr_expect_eq(memcmp(l->items[0].msg.id, m.id, HX_ID_LEN), 0);
    cr_expect_eq(l->items[0].msg.payload_len, strlen("poison-payload"));
    cr_expect_eq(memcmp(l->items[0].msg.payload, "poison-payload", strlen("poison-payload")), 0);
    cr_expect_str_eq(l->items[0].msg.type, "test.n");
    hx_dead_list_destroy(&l);

    /* a second dead letter, to purge */
    hx_msg_t m2 = message(HX_TO_SERVICE, "work", "poison-2");
    submit_ok(p, &m2);
    dlq_wait_t dw2 = {admin, m2.id};
    cr_assert(net_wait(in_dlq, &dw2, WAIT_MS), "the second message never reached the dead-letter queue");
    net_stop(&net, failing, SIGTERM);

    /* replay: back in the queue with attempts reset, so a working worker gets attempt 1; a
     * second replay finds nothing in the dead-letter queue */
    cr_assert_eq(hx_client_dlq_replay(admin, m.id), 0, "replay: %s", hx_client_error(admin));
    cr_assert_eq(hx_client_dlq_replay(admin, m.id), HX_EREFUSED, "a second replay must be refused");
    cr_expect_eq(hx_client_error_code(admin), HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE, "%s",
                 hx_client_error(admin));
    cr_expect_eq(dlq_count(admin, m.id, NULL), 0, "a replayed message leaves the dead-letter queue");
    start_worker("echo", "work", "sink", "1", log2);
    hx_client_t *sink = net_session(&net, HX_ROLE_CLINIC, "sink");
    fetched_t *f = calloc(1, sizeof *f);
    f->c = sink;
    uint8_t out[HX_ID_LEN];
    hx_id_derive(m.id, 0, out);
    f->until = out;
    fetch_exactly(f, "sink");
    cr_expect_str_eq(fetched_payload(f, out), "attempt=1;poison-payload");
    fetched_ack(f);
    read_log(log2, m.id, &a);
    cr_expect_eq(a.n, 1, "the replayed message is delivered once more");
    cr_expect_eq(a.attempt[0], 1, "attempt numbering restarts after a replay");
    read_log(log, m.id, &a);
    cr_expect_eq(a.n, 4, "the failing worker saw it only 4 times");

    /* purge */
    cr_assert_eq(hx_client_dlq_purge(admin, m2.id), 0, "purge: %s", hx_client_error(admin));
    cr_expect_eq(dlq_count(admin, m2.id, NULL), 0, "a purged message leaves the dead-letter queue");
    cr_expect_eq(hx_client_dlq_purge(admin, m2.id), HX_EREFUSED);
    cr_expect_eq(hx_client_error_code(admin), HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE);
    cr_expect_eq(hx_client_dlq_replay(admin, m2.id), HX_EREFUSED);
    cr_expect_eq(hx_client_error_code(admin), HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE);
    l = NULL;
    cr_expect_eq(hx_client_dlq_show(admin, m2.id, &l), HX_EREFUSED);
    hx_dead_list_destroy(&l);

    /* dead-letter operations are for admin sessions only */
    hx_dead_list_t *none = NULL;
    cr_expect_eq(hx_client_dlq_list(p, &none), HX_EREFUSED, "a clinic session may not list dead letters");
    cr_expect_eq(hx_client_error_code(p), HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "%s", hx_client_error(p));
    hx_dead_list_destroy(&none);

    free(f);
    hx_client_destroy(&sink);
    hx_client_destroy(&p);
    hx_client_destroy(&admin);
}

/* ---- d. write faults ---------------------------------------------------------------------- */

typedef struct {
    hx_client_t *c;
    const hx_msg_t *m;
} submit_wait_t;

static bool submit_accepted(void *arg)
{
    submit_wait_t *w = arg;
    return hx_client_submit(w->c, w->m, 1) == 0;
}

static void expect_unavailable(hx_client_t *c, const hx_msg_t *m, const char *const causes[], const char *when)
{
    int rc = hx_client_submit(c, m, 1);
    cr_assert_eq(rc, HX_EREFUSED, "%s: a submit must be refused, got %s", when, hx_strerror(rc));
    cr_expect_eq(hx_client_error_code(c), HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s: %s", when, hx_client_error(c));
    bool named = false;
    for (size_t i = 0; causes[i]; i++)
        named = named || contains_ci(hx_client_error(c), causes[i]);
    cr_expect(named, "%s: the error should name the cause: '%s'", when, hx_client_error(c));
}

/* The mailbox holds exactly the given messages, each once; they are left there (not acked). */
static void expect_mailbox(const char *box, const hx_msg_t *const msgs[], size_t n)
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, box);
    fetched_t *f = calloc(1, sizeof *f);
    f->c = c;
    f->want = n;
    fetch_exactly(f, box);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(fetched_count(f, msgs[i]->id), 1, "%s: message %zu (%s)", box, i, hex(msgs[i]->id));
        const char *pl = fetched_payload(f, msgs[i]->id);
        cr_expect(strlen(pl) == msgs[i]->payload_len && memcmp(pl, msgs[i]->payload, msgs[i]->payload_len) == 0,
                  "%s: payload of message %zu", box, i);
    }
    free(f);
    hx_client_destroy(&c);                  /* BYE: what was fetched goes back to the mailbox */
}

/* A worker that handles each delivered burst in one transaction (hx_worker_set_batch): when
 * the commit fails, the whole burst is nacked and none of its outputs reaches anyone; a burst
 * that commits acks each message with its outputs, and a message whose handler fails inside a
 * burst is nacked alone (the others of its burst go on). The burst's shape (how many messages
 * arrive in one turn of the worker's loop) is read from the worker's log, not assumed. */
typedef struct {
    char ids[64][33];
    unsigned attempt[64];
    size_t n;
    bool committed;
} wburst_t;

static size_t read_bursts(const char *path, wburst_t *b, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[128], h[33];
    unsigned att;
    size_t n = 0;
    bool open = false;
    while (fgets(line, sizeof line, f)) {
        if (!strcmp(line, "begin\n") && n < cap) {
            memset(&b[n], 0, sizeof b[n]);
            open = true;
        } else if (open && !strncmp(line, "commit ", 7)) {
            b[n++].committed = !strcmp(line, "commit ok\n");
            open = false;
        } else if (open && sscanf(line, "%32s %u", h, &att) == 2 && b[n].n < 64) {
            snprintf(b[n].ids[b[n].n], sizeof b[n].ids[0], "%s", h);
            b[n].attempt[b[n].n++] = att;
        }
    }
    fclose(f);
    return n;
}

/* Posts beyond what the worker's send queue holds wait their turn instead of being dropped
 * (scheduling posts a retry per referral on hold at each tick: thousands on a long wait list). */
typedef struct {
    hx_client_t *c;
    unsigned n, want, out_of_order, bad;
    unsigned char *seen;
} posts_t;

static bool posts_arrived(void *arg)
{
    posts_t *p = arg;
    hx_batch_t *b = NULL;
    if (hx_client_fetch(p->c, 500, &b) != 0)
        return false;
    uint8_t(*ids)[HX_ID_LEN] = calloc(b->count ? b->count : 1, HX_ID_LEN);
    cr_assert_not_null(ids);
    for (size_t i = 0; i < b->count; i++) {
        unsigned k;
        char text[32] = "";
        size_t len = b->msgs[i].payload_len < sizeof text - 1 ? b->msgs[i].payload_len : sizeof text - 1;
        memcpy(text, b->msgs[i].payload, len);
        if (sscanf(text, "post=%u", &k) != 1 || k >= p->want) {
            p->bad++;
        } else {
            p->out_of_order += k != p->n;
            p->seen[k]++;
        }
        p->n++;
        memcpy(ids[i], b->msgs[i].id, HX_ID_LEN);
    }
    if (b->count)
        cr_assert_eq(hx_client_ack(p->c, (const uint8_t(*)[HX_ID_LEN])ids, b->count), 0, "ack: %s",
                     hx_client_error(p->c));
    free(ids);
    hx_batch_destroy(&b);
    return p->n >= p->want;
}

Test(durability, worker_posts_thousands_at_once_none_dropped)
{
    start_broker(NULL);
    enum { N = 5000 };
    const char *argv[] = {net_bin("tests/hx-test-worker"), "--broker", net.endpoint, "--service", "poster", "--to",
                          "posts", "--post", "5000", NULL};
    net_spawn(&net, "poster", argv);
    posts_t p = {.c = net_session(&net, HX_ROLE_CLINIC, "posts"), .want = N, .seen = calloc(N, 1)};
    cr_assert_not_null(p.seen);
    cr_assert(net_wait(posts_arrived, &p, 120000), "%u of %d posts arrived (see %s/poster.log)", p.n, N, net.dir);
    p.want = N + 1;                             /* one more fetch: nothing else comes */
    posts_arrived(&p);
    cr_expect_eq(p.n, N, "%u posts arrived, %d posted", p.n, N);
    cr_expect_eq(p.bad, 0);
    cr_expect_eq(p.out_of_order, 0, "posts arrive in the order they were posted");
    unsigned twice = 0, missing = 0;
    for (unsigned i = 0; i < N; i++) {
        twice += p.seen[i] > 1;
        missing += p.seen[i] == 0;
    }
    cr_expect_eq(missing, 0, "%u posts missing", missing);
    cr_expect_eq(twice, 0, "%u posts arrived twice", twice);
    free(p.seen);
    hx_client_destroy(&p.c);
}

Test(durability, worker_bursts_commit_or_nack_together)
{
    const char *extra[] = {"--heartbeat-ms", "100", "--max-attempts", "3", "--backoff-ms", "50",
                           "--backoff-max-ms", "200", NULL};
    start_broker(extra);
    enum { N = 40 };
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_client_t *admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    static char payloads[N][16];
    hx_msg_t m[N];
    for (int i = 0; i < N; i++) {                       /* queued before the worker starts */
        snprintf(payloads[i], sizeof payloads[i], i == 7 ? "poison" : "m%d", i);
        m[i] = message(HX_TO_SERVICE, "work", payloads[i]);
        submit_ok(p, &m[i]);
    }
    char blog[512];
    snprintf(blog, sizeof blog, "%s/bursts.log", net.dir);
    const char *argv[] = {net_bin("tests/hx-test-worker"), "--broker", net.endpoint, "--service", "work", "--to",
                          "sink", "--credit", "16", "--batch-log", blog, "--fail-commits", "1", "--poison", "poison",
                          NULL};
    net_spawn(&net, "batch-worker", argv);
    dlq_wait_t dw = {admin, m[7].id};
    cr_assert(net_wait(in_dlq, &dw, WAIT_MS), "the poison message never reached the dead-letter queue (see %s)",
              net.dir);

    /* every other message reaches the sink exactly once, with the attempt of the burst that
     * committed it */
    hx_client_t *sink = net_session(&net, HX_ROLE_CLINIC, "sink");
    fetched_t *f = calloc(1, sizeof *f);
    f->c = sink;
    f->want = N - 1;
    fetch_exactly(f, "sink");
    wburst_t *b = calloc(64, sizeof *b);
    size_t nb = read_bursts(blog, b, 64);
    cr_assert_geq(nb, 2, "the worker's log shows %zu burst(s) (see %s)", nb, blog);
    cr_expect_not(b[0].committed, "the first commit was to fail");
    fprintf(stderr, "worker_bursts: %zu burst(s) of", nb);
    for (size_t k = 0; k < nb; k++)
        fprintf(stderr, " %zu%s", b[k].n, b[k].committed ? "" : " (failed)");
    fprintf(stderr, " message(s)\n");
    size_t handled_in_committed = 0;
    for (int i = 0; i < N; i++) {
        uint8_t out[HX_ID_LEN];
        hx_id_derive(m[i].id, 0, out);
        if (i == 7) {
            cr_expect_eq(fetched_count(f, out), 0, "the poison message produced an output");
            continue;
        }
        cr_expect_eq(fetched_count(f, out), 1, "message %d (%s): %zu output(s)", i, hex(m[i].id), fetched_count(f, out));
        /* the output's attempt is the one of the committed burst that handled it */
        unsigned committed_attempt = 0;
        for (size_t k = 0; k < nb; k++)
            for (size_t j = 0; j < b[k].n; j++)
                if (b[k].committed && !strcmp(b[k].ids[j], hex(m[i].id))) {
                    cr_expect_eq(committed_attempt, 0, "message %d committed twice", i);
                    committed_attempt = b[k].attempt[j];
                    handled_in_committed++;
                }
        char want[32];
        snprintf(want, sizeof want, "attempt=%u;%s", committed_attempt, payloads[i]);
        cr_expect_str_eq(fetched_payload(f, out), want, "message %d", i);
    }
    cr_expect_eq(handled_in_committed, N - 1);
    /* what the failed commit held came again, and nothing of its first attempt went out */
    cr_assert_gt(b[0].n, 0, "the failed burst held no message");
    for (size_t j = 0; j < b[0].n; j++)
        cr_expect_eq(b[0].attempt[j], 1, "the first burst's messages were first deliveries");
    fetched_ack(f);
    free(b);
    free(f);
    hx_client_destroy(&sink);
    hx_client_destroy(&admin);
    hx_client_destroy(&p);
}

Test(durability, disk_full_then_space_returns)
{
    const char *extra[] = {"--heartbeat-ms", "100", "--test-faults", faults, NULL};
    start_broker(extra);
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_msg_t a = message(HX_TO_MAILBOX, "box", "before-the-fault");
    hx_msg_t q = message(HX_TO_SERVICE, "later", "queued-before-the-fault");
    submit_ok(p, &a);
    submit_ok(p, &q);

    write_faults("enospc");
    hx_msg_t b = message(HX_TO_MAILBOX, "box", "during-the-fault");
    const char *causes[] = {"full", "space", NULL};
    expect_unavailable(p, &b, causes, "disk full");
    expect_unavailable(p, &b, causes, "disk full, again");

    /* space returns: the same submit goes through without a restart */
    cr_assert_eq(unlink(faults), 0);
    submit_wait_t sw = {p, &b};
    cr_assert(net_wait(submit_accepted, &sw, WAIT_MS), "the broker did not resume accepting after the disk had "
                                                       "space again: %s", hx_client_error(p));
    hx_client_t *admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    cr_expect_eq(hx_client_health(admin), 0, "healthy again: %s", hx_client_error(admin));

    /* what was accepted before the fault is delivered; the refused one is there once */
    const hx_msg_t *box[] = {&a, &b};
    expect_mailbox("box", box, 2);
    char log[512];
    snprintf(log, sizeof log, "%s/later.attempts", net.dir);
    pid_t w = start_worker("echo", "later", "later-out", "1", log);
    uint8_t q_out[HX_ID_LEN];
    hx_id_derive(q.id, 0, q_out);
    hx_client_t *oc = net_session(&net, HX_ROLE_CLINIC, "later-out");
    fetched_t *f = calloc(1, sizeof *f);
    f->c = oc;
    f->until = q_out;
    fetch_exactly(f, "later-out");
    cr_expect_str_eq(fetched_payload(f, q_out), "attempt=1;queued-before-the-fault");
    fetched_ack(f);
    free(f);
    hx_client_destroy(&oc);
    net_stop(&net, w, SIGTERM);
    hx_client_destroy(&p);
    hx_client_destroy(&admin);

    /* and all of it survives a crash */
    restart_broker(SIGKILL);
    expect_mailbox("box", box, 2);
}

Test(durability, fsync_failure_refuses_until_restart)
{
    const char *extra[] = {"--heartbeat-ms", "100", "--test-faults", faults, NULL};
    start_broker(extra);
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_client_t *admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    hx_msg_t a = message(HX_TO_MAILBOX, "box", "before-the-fault");
    submit_ok(p, &a);
    cr_assert_eq(hx_client_health(admin), 0, "healthy before the fault: %s", hx_client_error(admin));

    write_faults("eio");
    hx_msg_t b = message(HX_TO_MAILBOX, "box", "after-the-fault");
    const char *causes[] = {"sync", "i/o", "input/output", "eio", NULL};
    expect_unavailable(p, &b, causes, "fdatasync failed");
    cr_expect_eq(hx_client_health(admin), HX_EREFUSED, "health after an fdatasync failure");
    cr_expect_eq(hx_client_error_code(admin), HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", hx_client_error(admin));

    /* the fault is gone, but the broker cannot know what reached the disk: it keeps
     * refusing (unlike disk-full, which recovers within about a second) until restarted */
    cr_assert_eq(unlink(faults), 0);
    submit_wait_t sw = {p, &b};
    cr_expect_not(net_wait(submit_accepted, &sw, 2500), "a submit was accepted after an fdatasync failure "
                                                         "without a restart");
    expect_unavailable(p, &b, causes, "fdatasync failed, fault cleared, no restart");
    cr_expect_eq(hx_client_health(admin), HX_EREFUSED, "health stays refused until a restart");
    hx_client_destroy(&p);
    hx_client_destroy(&admin);

    int status = restart_broker(SIGTERM);
    fprintf(stderr, "fsync_failure: the broker exited with status %d after SIGTERM\n", status);
    p = net_session(&net, HX_ROLE_CLINIC, "producer");
    admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    cr_expect_eq(hx_client_health(admin), 0, "healthy after the restart: %s", hx_client_error(admin));
    submit_ok(p, &b);
    const hx_msg_t *box[] = {&a, &b};
    expect_mailbox("box", box, 2);
    hx_client_destroy(&p);
    hx_client_destroy(&admin);
}

/* ---- e. the CLI's dlq and health ---------------------------------------------------------- */

static size_t pb_field(uint8_t *out, unsigned field, const void *data, size_t len)
{
    size_t k = 0;
    out[k++] = (uint8_t)(field << 3 | 2);
    out[k++] = (uint8_t)len;                /* all shorter than 128 here */
    memcpy(out + k, data, len);
    return k + len;
}

static size_t pb_str(uint8_t *out, unsigned field, const char *s)
{
    return pb_field(out, field, s, strlen(s));
}

/* A handoff.Referral (referral.proto) with a referral id and identifiable patient details. */
static size_t referral_payload(uint8_t *out)
{
    uint8_t patient[128];
    size_t np = 0;
    np += pb_str(patient + np, 1, "Zelda");
    np += pb_str(patient + np, 2, "Quillfeather");
    np += pb_str(patient + np, 6, "9876-543-210-ZQ");
    size_t n = 0;
    n += pb_str(out + n, 1, "R-0123456789ABCDEF");
    n += pb_str(out + n, 2, "NP-2026-0042");
    n += pb_field(out + n, 4, patient, np);
    n += pb_str(out + n, 6, "knee pain after the fall of Quillfeather");
    return n;
}

static int cli(char *out, size_t cap, const char *const args[])
{
    return net_cli(&net, "northpoint", out, cap, args);
}

Test(durability, cli_dlq)
{
    const char *extra[] = {"--heartbeat-ms", "100", "--max-attempts", "2", "--backoff-ms", "20", "--test-faults",
                           faults, NULL};
    start_broker(extra);
    static uint8_t payload[256];
    size_t plen = referral_payload(payload);
    pid_t failing = start_worker("fail", "intake", "sink", "1", NULL);
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "northpoint");
    hx_client_t *admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    hx_msg_t d1 = message(HX_TO_SERVICE, "intake", "");
    d1.type = "handoff.Referral";
    d1.payload = payload;
    d1.payload_len = plen;
    hx_msg_t d2 = message(HX_TO_SERVICE, "intake", "not a referral at all");
    d2.type = "test.opaque";
    submit_ok(p, &d1);
    submit_ok(p, &d2);
    dlq_wait_t w1 = {admin, d1.id}, w2 = {admin, d2.id};
    cr_assert(net_wait(in_dlq, &w1, WAIT_MS) && net_wait(in_dlq, &w2, WAIT_MS), "dead letters expected (see %s)",
              net.dir);
    net_stop(&net, failing, SIGTERM);

    static char out[65536];
    char id1[33], id2[33], upper[33];
    snprintf(id1, sizeof id1, "%s", hex(d1.id));
    snprintf(id2, sizeof id2, "%s", hex(d2.id));

    /* list: the table (with --clinic given, which dlq ignores) */
    const char *list[] = {"--admin", "ops", "dlq", "list", NULL};
    cr_assert_eq(cli(out, sizeof out, list), 0, "dlq list (see %s/cli.log)", net.dir);
    cr_expect(strstr(out, "ID") && strstr(out, "QUEUE") && strstr(out, "TYPE") && strstr(out, "ATTEMPTS") &&
                  strstr(out, "DEAD AT") && strstr(out, "REASON"),
              "table header:\n%s", out);
    cr_expect(strstr(out, id1) && strstr(out, id2), "both ids:\n%s", out);
    cr_expect(strstr(out, "intake") && strstr(out, "handoff.Referral") && strstr(out, "always fails"), "%s", out);
    cr_expect(strstr(out, "2 dead letter(s)"), "%s", out);
    cr_expect(!strstr(out, "Zelda") && !strstr(out, "Quillfeather"), "no patient details in the list:\n%s", out);

    /* list --json, with the default admin name */
    const char *jlist[] = {"--json", "dlq", "list", NULL};
    cr_assert_eq(cli(out, sizeof out, jlist), 0);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "dlq list --json: %s:\n%s", jerr.text, out);
    cr_assert(json_is_array(j) && json_array_size(j) == 2, "%s", out);
    size_t idx;
    json_t *it;
    int matched = 0;
    json_array_foreach(j, idx, it) {
        if (strcmp(jstr(it, "id"), id1) == 0) {
            matched++;
            cr_expect_eq(json_integer_value(json_object_get(it, "attempts")), 2);
            cr_expect_str_eq(jstr(json_object_get(it, "to"), "name"), "intake");
            cr_expect_str_eq(jstr(it, "type"), "handoff.Referral");
            cr_expect(contains_ci(jstr(it, "reason"), "always fails"));
            cr_expect_gt(json_integer_value(json_object_get(it, "dead_at_ms")), 0);
        }
    }
    cr_expect_eq(matched, 1, "%s", out);
    json_decref(j);

    /* show: fields, payload size and the referral id; never patient details */
    const char *show[] = {"--admin", "ops", "dlq", "show", id1, NULL};
    cr_assert_eq(cli(out, sizeof out, show), 0, "dlq show");
    char size[32];
    snprintf(size, sizeof size, "%zu bytes", plen);
    cr_expect(strstr(out, id1) && strstr(out, "R-0123456789ABCDEF") && strstr(out, size) &&
                  strstr(out, "always fails") && strstr(out, "intake") && strstr(out, "handoff.Referral"),
              "%s", out);
    cr_expect(!strstr(out, "Zelda") && !strstr(out, "Quillfeather") && !strstr(out, "9876") &&
                  !strstr(out, "knee") && !strstr(out, "NP-2026-0042"),
              "no patient details in show:\n%s", out);
    for (size_t i = 0; i < 32; i++)             /* upper-case ids are the same ids */
        upper[i] = (char)(id1[i] >= 'a' && id1[i] <= 'f' ? id1[i] - 32 : id1[i]);
    upper[32] = '\0';
    const char *jshow[] = {"--json", "dlq", "show", upper, NULL};
    cr_assert_eq(cli(out, sizeof out, jshow), 0, "dlq show --json with an upper-case id");
    j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "dlq show --json: %s:\n%s", jerr.text, out);
    cr_expect_str_eq(jstr(j, "id"), id1);
    cr_expect_str_eq(jstr(j, "referral_id"), "R-0123456789ABCDEF");
    cr_expect_eq(json_integer_value(json_object_get(j, "payload_bytes")), (json_int_t)plen);
    cr_expect(!strstr(out, "Zelda"), "%s", out);
    json_decref(j);
    const char *show2[] = {"dlq", "show", id2, NULL};
    cr_assert_eq(cli(out, sizeof out, show2), 0);
    snprintf(size, sizeof size, "%zu bytes", strlen("not a referral at all"));
    cr_expect(strstr(out, size) && strstr(out, "test.opaque") && !strstr(out, "not a referral"), "%s", out);

    /* malformed ids: usage error, nothing on stdout */
    const char *bad_ids[] = {"xyz", "0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef0",
                             "0123456789abcdef0123456789abcdeg", "", NULL};
    const char *subs[] = {"show", "replay", "purge"};
    for (size_t i = 0; bad_ids[i]; i++)
        for (size_t k = 0; k < 3; k++) {
            const char *args[] = {"dlq", subs[k], bad_ids[i], NULL};
            cr_expect_eq(cli(out, sizeof out, args), 2, "dlq %s '%s' must be a usage error", subs[k], bad_ids[i]);
            cr_expect_str_empty(out);
        }
    const char *no_id[] = {"dlq", "show", NULL};
    cr_expect_eq(cli(out, sizeof out, no_id), 2);
    const char *no_sub[] = {"dlq", NULL};
    cr_expect_eq(cli(out, sizeof out, no_sub), 2);
    const char *bad_sub[] = {"dlq", "drop", id1, NULL};
    cr_expect_eq(cli(out, sizeof out, bad_sub), 2);

    /* an id that is not a dead letter: 4 */
    uint8_t other[HX_ID_LEN];
    hx_id_random(other);
    char other_hex[33];
    snprintf(other_hex, sizeof other_hex, "%s", hex(other));
    const char *show_none[] = {"dlq", "show", other_hex, NULL};
    cr_expect_eq(cli(out, sizeof out, show_none), 4, "dlq show of an unknown id");

    /* replay, then again: 0 then 4; the message is back in intake's queue */
    const char *replay[] = {"--admin", "ops", "dlq", "replay", id1, NULL};
    cr_assert_eq(cli(out, sizeof out, replay), 0, "dlq replay (see %s/cli.log)", net.dir);
    cr_expect(strstr(out, id1) && strstr(out, "replayed"), "%s", out);
    cr_expect_eq(cli(out, sizeof out, replay), 4, "a second replay finds no dead letter");
    cr_expect_eq(dlq_count(admin, d1.id, NULL), 0);

    /* purge, then again: 0 then 4 */
    const char *purge[] = {"--admin", "ops", "dlq", "purge", id2, NULL};
    cr_assert_eq(cli(out, sizeof out, purge), 0, "dlq purge");
    cr_expect(strstr(out, id2) && strstr(out, "purged"), "%s", out);
    cr_expect_eq(cli(out, sizeof out, purge), 4, "a second purge finds no dead letter");
    cr_assert_eq(cli(out, sizeof out, list), 0);
    cr_expect(strstr(out, "0 dead letter(s)") && !strstr(out, id1) && !strstr(out, id2), "%s", out);

    /* the replayed referral reaches a worker again, as attempt 1 */
    char log[512];
    snprintf(log, sizeof log, "%s/intake.attempts", net.dir);
    start_worker("echo", "intake", "sink", "1", log);
    log_wait_t lw = {log, d1.id, 1};
    cr_assert(net_wait(log_has, &lw, WAIT_MS), "the replayed message was not delivered");
    attempts_t a;
    read_log(log, d1.id, &a);
    cr_expect_eq(a.attempt[0], 1);

    /* health: as the clinic, as the admin; 0 */
    const char *health[] = {"health", NULL};
    cr_expect_eq(cli(out, sizeof out, health), 0, "health: %s", out);
    cr_expect(strstr(out, "healthy"), "%s", out);
    const char *ahealth[] = {"--admin", "ops", "health", NULL};
    cr_expect_eq(cli(out, sizeof out, ahealth), 0, "health as admin: %s", out);
    const char *jhealth[] = {"--json", "health", NULL};
    cr_expect_eq(cli(out, sizeof out, jhealth), 0);
    j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "%s", out);
    cr_expect(json_is_true(json_object_get(j, "healthy")), "%s", out);
    json_decref(j);

    /* the operator commands opened no clinic store */
    char db[600];
    snprintf(db, sizeof db, "%s/home/northpoint.db", net.dir);
    cr_expect_not(net_file_exists(db), "dlq and health must not open the clinic's SQLite store");

    /* health: 3 when nobody answers */
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "tcp://127.0.0.1:%d", net_free_port());
    const char *gone[] = {"--broker", nowhere, "--timeout-ms", "200", "health", NULL};
    cr_expect_eq(cli(out, sizeof out, gone), 3, "health with no broker");
    const char *gone_list[] = {"--broker", nowhere, "--timeout-ms", "200", "dlq", "list", NULL};
    cr_expect_eq(cli(out, sizeof out, gone_list), 3, "dlq list with no broker");

    /* health: 1 when the broker cannot write its log */
    write_faults("eio");
    hx_msg_t x = message(HX_TO_MAILBOX, "box", "x");
    cr_expect_eq(hx_client_submit(p, &x, 1), HX_EREFUSED);
    cr_expect_eq(cli(out, sizeof out, health), 1, "health after an fdatasync failure: %s", out);
    cr_expect(strstr(out, "unhealthy"), "%s", out);
    cr_expect_eq(cli(out, sizeof out, jhealth), 1);
    j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "%s", out);
    cr_expect(json_is_false(json_object_get(j, "healthy")), "%s", out);
    json_decref(j);

    hx_client_destroy(&p);
    hx_client_destroy(&admin);
    /* a broker whose log failed may exit non-zero: stopped here, its status not judged */
    net_stop(&net, net_pid(&net, "broker"), SIGTERM);
}

/* ---- f. damage in the log, salvage, the audit anchor (issue 13) --------------------------------- */

typedef struct {
    pid_t pid;
    int status;
    bool exited;
    const char *ready;
} exit_wait_t;

static bool exited_or_ready(void *arg)
{
    exit_wait_t *w = arg;
    if (hx_spawn_wait(w->pid, 0, &w->status) == 1)
        w->exited = true;
    return w->exited || net_file_exists(w->ready);
}

/* Runs the broker with --data (and extra) until it exits; its output (stdout and stderr)
 * into out. Returns the exit status; fails the test when the broker starts serving instead. */
static int broker_to_exit(const char *const extra[], char *out, size_t cap)
{
    char ready[600], log[600];
    snprintf(ready, sizeof ready, "%s/once.endpoint", net.dir);
    snprintf(log, sizeof log, "%s/broker-once.log", net.dir);
    unlink(ready);
    unlink(log);
    const char *argv[32] = {net_bin("broker/handoff-broker"), "--bind", bind_ep, "--plain-tcp-for-tests", "--data",
                            data_dir, "--ready-file", ready};
    size_t k = 8;
    for (size_t i = 0; extra && extra[i] && k < 31; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    pid_t pid = net_spawn(&net, "broker-once", argv);
    exit_wait_t w = {pid, 0, false, ready};
    cr_assert(net_wait(exited_or_ready, &w, WAIT_MS), "handoff-broker neither exited nor started");
    if (!w.exited) {
        net_stop(&net, pid, SIGKILL);
        cr_assert_fail("handoff-broker started serving (see %s)", log);
    }
    net_stop(&net, pid, 0);                     /* reaped already: frees its slot */
    FILE *f = fopen(log, "r");
    size_t len = f ? fread(out, 1, cap - 1, f) : 0;
    out[len] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(w.status) ? WEXITSTATUS(w.status) : -1;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    char *data = malloc((size_t)n + 1);
    cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

#define N_DAMAGE 20
static char damage_payloads[N_DAMAGE][32];

/* Submits N_DAMAGE messages to mailbox "box" (each answered "accepted") and stops the broker. */
static void submit_then_stop(hx_msg_t msgs[N_DAMAGE], const char *const extra[])
{
    start_broker(extra);
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    for (int i = 0; i < N_DAMAGE; i++) {
        snprintf(damage_payloads[i], sizeof damage_payloads[i], "payload-%02d", i);
        msgs[i] = message(HX_TO_MAILBOX, "box", damage_payloads[i]);
        submit_ok(p, &msgs[i]);
    }
    hx_client_destroy(&p);
    cr_assert_eq(net_stop(&net, net_pid(&net, "broker"), SIGTERM), 0, "a clean stop");
}

/* Flips one byte of message 10's payload in the active segment; returns the damaged bytes. */
static char *flip_message_10(char *seg, size_t cap, size_t *len)
{
    snprintf(seg, cap, "%s/00000000000000000001.log", data_dir);
    char *data = read_file(seg, len);
    char *at = memmem(data, *len, "payload-10", 10);
    cr_assert_not_null(at, "message 10 is in the active segment");
    at[8] ^= 0x20;                              /* "payload-10" -> "payload-\x110" */
    write_file(seg, data, *len);
    return data;
}

/* The task's case: 20 accepted messages, one byte flipped in the middle of the active segment.
 * The broker used to cut "a torn tail" and serve 9 of them; now it refuses to start, names the
 * segment, the offset and the messages around the damage, and changes nothing on disk. */
Test(durability, flipped_byte_in_acked_prefix_refuses)
{
    hx_msg_t m[N_DAMAGE];
    submit_then_stop(m, NULL);
    char seg[600], out[16384];
    size_t len;
    char *damaged = flip_message_10(seg, sizeof seg, &len);
    int status = broker_to_exit(NULL, out, sizeof out);
    cr_assert_eq(status, 1, "the broker refuses to start: %s", out);
    cr_expect(strstr(out, "00000000000000000001.log is damaged at offset"), "%s", out);
    cr_expect(strstr(out, "refusing to start, nothing was cut"), "%s", out);
    cr_expect(strstr(out, hex(m[9].id)) && strstr(out, hex(m[11].id)), "the messages before and after: %s", out);
    cr_expect(strstr(out, "--salvage"), "the way out is named: %s", out);
    size_t now_len;
    char *now = read_file(seg, &now_len);
    cr_assert(now_len == len && memcmp(now, damaged, len) == 0, "the segment is untouched");
    free(now);
    free(damaged);
}

/* ... and handoff-broker --salvage: every readable message into a new log, the damaged one
 * named by the messages around it, the original kept aside; then the broker serves the 19. */
Test(durability, salvage_serves_every_readable_message)
{
    hx_msg_t m[N_DAMAGE];
    submit_then_stop(m, NULL);
    char seg[600], out[16384];
    size_t len;
    char *damaged = flip_message_10(seg, sizeof seg, &len);
    cr_assert_eq(broker_to_exit(NULL, out, sizeof out), 1, "%s", out);

    const char *salvage[] = {"--salvage", NULL};
    cr_assert_eq(broker_to_exit(salvage, out, sizeof out), 0, "salvage: %s", out);
    cr_expect(strstr(out, "00000000000000000001.log: bytes ") && strstr(out, "could not be read (acknowledged)"),
              "%s", out);
    cr_expect(strstr(out, hex(m[9].id)) && strstr(out, hex(m[11].id)), "%s", out);
    char *aside = strstr(out, "The original segments are in ");
    cr_assert_not_null(aside, "%s", out);
    char kept[700];
    cr_assert_eq(sscanf(aside, "The original segments are in %600[^,],", kept), 1);
    strcat(kept, "/00000000000000000001.log");
    size_t kept_len;
    char *orig = read_file(kept, &kept_len);
    cr_assert(kept_len == len && memcmp(orig, damaged, len) == 0, "the damaged segment is kept aside untouched");
    free(orig);
    free(damaged);

    start_broker(NULL);
    const hx_msg_t *box[N_DAMAGE];
    size_t n = 0;
    for (int i = 0; i < N_DAMAGE; i++)
        if (i != 10)
            box[n++] = &m[i];
    expect_mailbox("box", box, n);
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_msg_t more = message(HX_TO_MAILBOX, "box", "after-the-salvage");
    submit_ok(p, &more);
    hx_client_destroy(&p);
    box[n++] = &more;
    restart_broker(SIGKILL);
    expect_mailbox("box", box, n);
}

static void write_key(const char *path, char c)
{
    char line[66];
    memset(line, c, 64);
    line[64] = '\n';
    write_file(path, line, 65);
}

/* handoff-broker --rekey: a stopped broker's log sealed anew. Every message held is served
 * with the new key (and goes on after a kill -9), the old key no longer opens the log, no
 * byte the old key sealed is left; refused while the broker runs, and with the wrong old key. */
Test(durability, rekey_seals_every_held_message_anew)
{
    char key_a[600], key_b[600], key_c[600], out[16384];
    snprintf(key_a, sizeof key_a, "%s/data-a.key", net.dir);
    snprintf(key_b, sizeof key_b, "%s/data-b.key", net.dir);
    snprintf(key_c, sizeof key_c, "%s/data-c.key", net.dir);
    write_key(key_a, 'a');
    write_key(key_b, 'b');
    write_key(key_c, 'c');
    const char *with_a[] = {"--data-key", key_a, NULL}, *with_b[] = {"--data-key", key_b, NULL};
    hx_msg_t m[N_DAMAGE];
    submit_then_stop(m, with_a);
    char seg[600];
    snprintf(seg, sizeof seg, "%s/00000000000000000001.log", data_dir);
    size_t len;
    char *sealed = read_file(seg, &len);        /* some bytes the old key sealed, mid-log */
    cr_assert_gt(len, 400);
    char old_bytes[48];
    memcpy(old_bytes, sealed + len / 2, sizeof old_bytes);
    free(sealed);
    cr_assert(net_dir_holds(data_dir, old_bytes, sizeof old_bytes), "the positive control");

    const char *wrong[] = {"--rekey", "--data-key", key_c, "--new-data-key", key_b, NULL};
    cr_assert_eq(broker_to_exit(wrong, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "does not open with this data key"), "%s", out);
    const char *rekey[] = {"--rekey", "--data-key", key_a, "--new-data-key", key_b, NULL};
    start_broker(with_a);                        /* running: the directory is locked */
    cr_assert_eq(broker_to_exit(rekey, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "is in use by another handoff-broker (its LOCK is held)"), "%s", out);
    cr_assert_eq(net_stop(&net, net_pid(&net, "broker"), SIGTERM), 0);

    cr_assert_eq(broker_to_exit(rekey, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "Sealed 20 message(s)"), "%s", out);
    cr_assert_not(net_dir_holds(data_dir, old_bytes, sizeof old_bytes), "no byte the old key sealed is left");
    cr_assert_eq(broker_to_exit(with_a, out, sizeof out), 1, "the old key: %s", out);
    cr_expect(strstr(out, "does not open with this data key"), "%s", out);

    start_broker(with_b);
    const hx_msg_t *all[N_DAMAGE + 1];
    for (int i = 0; i < N_DAMAGE; i++)
        all[i] = &m[i];
    expect_mailbox("box", all, N_DAMAGE);
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_msg_t more = message(HX_TO_MAILBOX, "box", "after-the-rekey");
    submit_ok(p, &more);
    hx_client_destroy(&p);
    all[N_DAMAGE] = &more;
    restart_broker(SIGKILL);
    expect_mailbox("box", all, N_DAMAGE + 1);
}

/* Bytes past the acknowledged end (a group commit that never finished): cut, and every
 * accepted message is served. */
Test(durability, unacknowledged_tail_is_cut_and_every_accepted_message_served)
{
    hx_msg_t m[N_DAMAGE];
    submit_then_stop(m, NULL);
    char seg[600];
    snprintf(seg, sizeof seg, "%s/00000000000000000001.log", data_dir);
    size_t len;
    char *data = read_file(seg, &len);
    FILE *f = fopen(seg, "ab");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data + len - 150, 1, 120, f), 120);  /* a write the machine did not finish */
    cr_assert_eq(fclose(f), 0);
    free(data);
    start_broker(NULL);
    char log[600];
    snprintf(log, sizeof log, "%s/broker.log", net.dir);
    size_t log_len;
    char *text = read_file(log, &log_len);
    cr_expect(strstr(text, "cut a torn tail of 120 bytes"), "the broker says what it cut");
    free(text);
    const hx_msg_t *box[N_DAMAGE];
    for (int i = 0; i < N_DAMAGE; i++)
        box[i] = &m[i];
    expect_mailbox("box", box, N_DAMAGE);
}

/* The last lines of the audit log cut while the broker was down: handoff audit verify, given
 * the data directory, names the cut; the broker refuses to append to it; restored, both pass. */
Test(durability, audit_cut_tail_is_named_by_verify)
{
    char audit[600], anchor[600], out[8192];
    snprintf(audit, sizeof audit, "%s/audit.jsonl", net.dir);
    snprintf(anchor, sizeof anchor, "%s/audit.anchor", data_dir);
    const char *extra[] = {"--audit", audit, NULL};
    hx_msg_t m[N_DAMAGE];
    submit_then_stop(m, extra);

    const char *verify[] = {"audit", "verify", audit, data_dir, NULL};
    cr_assert_eq(net_cli(&net, "northpoint", out, sizeof out, verify), 0, "intact: %s", out);
    cr_expect(strstr(out, "reaches the anchored line"), "%s", out);
    json_error_t jerr;
    json_t *j = json_load_file(anchor, 0, &jerr);
    cr_assert_not_null(j, "%s: %s", anchor, jerr.text);
    long long anchored = json_integer_value(json_object_get(j, "lines"));
    json_decref(j);
    size_t len;
    char *whole = read_file(audit, &len), *cut = whole;
    long long lines = 0;
    for (const char *c = whole; (c = strchr(c, '\n')); c++)
        lines++;
    cr_assert_geq(lines, N_DAMAGE, "a line per submit at least");
    cr_assert_eq(anchored, lines, "a clean stop anchors the last line");
    for (long long line = 0; line < anchored - 2; line++)
        cut = strchr(cut, '\n') + 1;
    write_file(audit, whole, (size_t)(cut - whole));            /* the last lines anchored, gone */
    cr_assert_eq(net_cli(&net, "northpoint", out, sizeof out, verify), 1, "cut: %s", out);
    char want[160];
    snprintf(want, sizeof want, "the audit log ends at line %lld but the log anchored line %lld", anchored - 2,
             anchored);
    cr_expect(strstr(out, want), "expected \"%s\" in: %s", want, out);
    const char *plain[] = {"audit", "verify", audit, NULL};
    cr_expect_eq(net_cli(&net, "northpoint", out, sizeof out, plain), 0, "the chain alone cannot tell: %s", out);

    char bout[16384];
    cr_assert_eq(broker_to_exit(extra, bout, sizeof bout), 1, "the broker does not append to a cut log: %s", bout);
    cr_expect(strstr(bout, want), "%s", bout);

    write_file(audit, whole, len);
    free(whole);
    cr_assert_eq(net_cli(&net, "northpoint", out, sizeof out, verify), 0, "restored: %s", out);
    start_broker(extra);
    hx_client_t *p = net_session(&net, HX_ROLE_CLINIC, "producer");
    hx_msg_t more = message(HX_TO_MAILBOX, "box", "after");
    submit_ok(p, &more);
    hx_client_destroy(&p);
    cr_assert_eq(net_stop(&net, net_pid(&net, "broker"), SIGTERM), 0);
    cr_assert_eq(net_cli(&net, "northpoint", out, sizeof out, verify), 0, "and on: %s", out);
}

/* ---- the audit log rotates (ops readiness) ----------------------------------------------------- */

/* The files rotated out of net.dir/audit.jsonl, oldest first (names), and how many. */
static size_t audit_rotated(char names[][64], size_t cap)
{
    size_t n = 0;
    DIR *d = opendir(net.dir);
    cr_assert_not_null(d, "%s", net.dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "audit.jsonl.", 12) == 0 && n < cap)
            snprintf(names[n++], 64, "%.63s", e->d_name);
    closedir(d);
    qsort(names, n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

typedef struct {
    hx_client_t *producer;
    size_t want;
} burst_t;

/* Submits a burst of messages; true once the audit log has rotated want times. */
static bool burst_until_rotated(void *arg)
{
    burst_t *b = arg;
    for (int i = 0; i < 20; i++) {
        hx_msg_t m = message(HX_TO_MAILBOX, "box", "burst");
        submit_ok(b->producer, &m);
    }
    char names[16][64];
    return audit_rotated(names, 16) >= b->want;
}

/* A broker with a tiny --audit-max-bytes under a burst of messages: the audit log rotates
 * (at most once a second), handoff audit verify passes over the series and against the
 * anchor; one line of a rotated file edited, verify fails and names the file. */
Test(durability, audit_rotates_under_a_burst_and_verifies)
{
    char audit[600], out[8192];
    snprintf(audit, sizeof audit, "%s/audit.jsonl", net.dir);
    const char *extra[] = {"--audit", audit, "--audit-max-bytes", "2048", NULL};
    start_broker(extra);
    burst_t b = {net_session(&net, HX_ROLE_CLINIC, "producer"), 3};
    cr_assert(net_wait(burst_until_rotated, &b, 60000), "the audit log did not rotate 3 times (see %s)", net.dir);
    hx_client_destroy(&b.producer);
    cr_assert_eq(net_stop(&net, net_pid(&net, "broker"), SIGTERM), 0, "a clean stop");

    char names[16][64];
    size_t n = audit_rotated(names, 16);
    cr_assert_geq(n, 3);
    const char *verify[] = {"audit", "verify", audit, data_dir, NULL};
    cr_assert_eq(net_cli(&net, "northpoint", out, sizeof out, verify), 0, "the series: %s", out);
    char want[64];
    snprintf(want, sizeof want, "ok: %zu file(s)", n + 1);
    cr_expect(strstr(out, want) && strstr(out, "reaches the anchored line"), "expected \"%s\" in: %s", want, out);

    char old[700];
    snprintf(old, sizeof old, "%s/%s", net.dir, names[1]);
    size_t len;
    char *whole = read_file(old, &len);
    char *hit = strstr(whole, "\"action\":\"submit\"");
    cr_assert_not_null(hit, "a submit line in %s", old);
    memcpy(hit + 10, "SUBMIT", 6);
    write_file(old, whole, len);
    free(whole);
    cr_assert_eq(net_cli(&net, "northpoint", out, sizeof out, verify), 1, "edited: %s", out);
    cr_expect(strstr(out, old) && strstr(out, "edited"), "the edited file named: %s", out);
}

/* Lines of dir/<name>.log that contain text. */
static size_t log_count(const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.log", net.dir, name);
    FILE *f = fopen(path, "r");
    size_t n = 0;
    char line[1024];
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* The held worker serves again: "serving stalled" twice in its log (a second session). */
static bool serving_again(void *arg)
{
    (void)arg;
    return log_count("stalled", "serving stalled") >= 2;
}

/* A worker whose loop is held past the liveness window (a long tick: scheduling's, counting a
 * wait list of 300,000) finds its session gone: the broker expired it, and the posts the tick
 * made went out on it. The posts are kept and go again in the new session, each arriving once
 * (they were dropped with the session), and the worker says HELLO once, not once per refused
 * request: each HELLO is a new session that gives back what the last one was just handed
 * (scheduling opened 1,300 sessions in 2 s after a 4 s tick). */
Test(durability, a_worker_back_from_a_long_tick_keeps_its_posts_and_says_hello_once)
{
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    start_broker(extra);
    enum { N = 3000 };
    const char *argv[] = {net_bin("tests/hx-test-worker"), "--broker", net.endpoint, "--service", "stalled", "--to",
                          "posts", "--post", "3000", "--stall-ms", "2000", NULL};
    net_spawn(&net, "stalled", argv);
    posts_t p = {.c = net_session(&net, HX_ROLE_CLINIC, "posts"), .want = N, .seen = calloc(N, 1)};
    cr_assert_not_null(p.seen);
    cr_assert(net_wait(posts_arrived, &p, 120000), "%u of %d posts arrived (see %s/stalled.log)", p.n, N, net.dir);
    cr_assert(net_wait(serving_again, NULL, WAIT_MS), "the held worker kept its session (see %s)", net.dir);
    p.want = N + 1;                             /* one more fetch: nothing else comes */
    posts_arrived(&p);
    unsigned twice = 0, missing = 0;
    for (unsigned i = 0; i < N; i++) {
        twice += p.seen[i] > 1;
        missing += p.seen[i] == 0;
    }
    cr_expect_eq(missing, 0);
    cr_expect_eq(twice, 0);
    cr_expect_eq(p.bad, 0);
    /* one HELLO back (and one more per liveness window while it waits for WELCOME, on a slow
     * machine) */
    size_t again = log_count("broker", "worker stalled left (said hello again)");
    cr_expect_lt(again, 8, "%zu sessions replaced by another HELLO after the tick (see %s)", again, net.dir);
    free(p.seen);
    hx_client_destroy(&p.c);
}
