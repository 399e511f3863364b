/* Integration: observability of the real programs on 127.0.0.1.
 *   broker_counts         after a known workload (submits, a worker that acks, a worker whose
 *                         message is dead-lettered, a clinic that fetches and acks part of its
 *                         mailbox) /metrics shows exact counts, and is well-formed text format
 *   stats_op              the "stats" admin op (hx_client_stats) returns the JSON shape of
 *                         docs/PROTOCOL.md with the same numbers
 *   expired_peer          a worker killed -9 counts as a heartbeat failure
 *   auth_refused          with CURVE, a key not in the allow-list counts as a ZAP denial
 *   readyz_store_faults   /readyz is 503 while the disk is "full" (--test-faults), 200 once
 *                         space returns; /healthz stays 200
 *   service_readyz        a service's /readyz is 503 before the broker exists, 200 with a live
 *                         session, 503 again once the broker is gone; its counters and
 *                         latency histogram after referrals are handled
 *   json_logs             --log-format json: every line of the broker and a service is one
 *                         JSON object with ts, level, program, msg
 *   bad_flags             a bad --http or --log-format value is refused, naming the setting
 *
 * Every wait polls a condition with a generous deadline; nothing sleeps in place of one. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hx_client.h"
#include "hx_curve.h"
#include "hx_refjson.h"
#include "hx_spawn.h"

#define WAIT_MS 30000

static net_t net;

static void setup(void)
{
    net_init(&net);
}

static void teardown(void)
{
    int bad = net_stop_all(&net);
    net_fini_verdict(bad, net.dir);
}

TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 300);

/* ---- HTTP over a loopback socket -------------------------------------------------------- */

typedef struct {
    int status;                 /* 0: no answer (not listening yet, or the connection failed) */
    char *body;                 /* malloc'd, NUL-terminated */
} http_reply_t;

static void reply_free(http_reply_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* GET path from 127.0.0.1:port with HTTP/1.0 (the server closes after the reply). */
static http_reply_t http_get(int port, const char *path)
{
    http_reply_t r = {0, NULL};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return r;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return r;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return r;
    }
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (len + 4096 > cap)
            cr_assert_not_null(buf = realloc(buf, cap *= 2));
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) == 0 && body && sscanf(buf + 8, " %d", &r.status) == 1) {
        r.body = strdup(body + 4);
        cr_assert_not_null(r.body);
    } else {
        r.status = 0;
    }
    free(buf);
    return r;
}

/* The status of GET path, 0 when nothing answers. */
static int http_status(int port, const char *path)
{
    http_reply_t r = http_get(port, path);
    reply_free(&r);
    return r.status;
}

typedef struct {
    int port;
    const char *path;
    int want;
} status_cond_t;

static bool status_is(void *arg)
{
    status_cond_t *c = arg;
    return http_status(c->port, c->path) == c->want;
}

static void wait_status(int port, const char *path, int want)
{
    status_cond_t c = {port, path, want};
    cr_assert(net_wait(status_is, &c, WAIT_MS), "GET %s on port %d did not become %d (now %d; see %s)", path, port,
              want, http_status(port, path), net.dir);
}

/* ---- the text format ---------------------------------------------------------------------- */

/* The value of the sample `series` (e.g. `x_total` or `x{queue="intake"}`) in text, NAN when
 * absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return NAN;
}

/* GETs /metrics (200) and returns its body (free it). */
static char *scrape(int port)
{
    http_reply_t r = http_get(port, "/metrics");
    cr_assert_eq(r.status, 200, "GET /metrics: %d", r.status);
    return r.body;
}

static double metric(int port, const char *series)
{
    char *t = scrape(port);
    double v = sample(t, series);
    free(t);
    return v;
}

typedef struct {
    int port;
    const char *series;
    double want;
} metric_cond_t;

static bool metric_is(void *arg)
{
    metric_cond_t *c = arg;
    return metric(c->port, c->series) == c->want;
}

static void wait_metric(int port, const char *series, double want)
{
    metric_cond_t c = {port, series, want};
    cr_assert(net_wait(metric_is, &c, WAIT_MS), "%s did not become %g (now %g; see %s)", series, want,
              metric(port, series), net.dir);
}

/* Checks the exposition format: every sample follows the HELP and TYPE of its family,
 * counters end in _total, each histogram's buckets are cumulative and end in +Inf = _count. */
static void check_format(const char *text)
{
    char family[128] = "", type[16] = "";
    bool help = false;
    double last_bucket = -1;
    char *copy = strdup(text), *save = NULL;
    cr_assert_not_null(copy);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            cr_assert_eq(sscanf(line + 7, "%127s", family), 1);
            help = true;
            type[0] = '\0';
            last_bucket = -1;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128];
            cr_assert_eq(sscanf(line + 7, "%127s %15s", name, type), 2, "bad TYPE line: %s", line);
            cr_assert(help && strcmp(name, family) == 0, "TYPE without its HELP: %s", line);
            size_t n = strlen(name);
            cr_assert(strcmp(type, "counter") != 0 || (n > 6 && strcmp(name + n - 6, "_total") == 0),
                      "counter %s does not end in _total", name);
            continue;
        }
        cr_assert(line[0] != '#', "unexpected comment: %s", line);
        cr_assert(type[0], "sample before its TYPE: %s", line);
        size_t n = strlen(family);
        cr_assert(strncmp(line, family, n) == 0, "sample %s outside its family %s", line, family);
        const char *rest = line + n;
        const char *value = strrchr(line, ' ');
        cr_assert_not_null(value, "no value: %s", line);
        char *end;
        double v = strtod(value + 1, &end);
        cr_assert(*end == '\0', "bad value: %s", line);
        if (strcmp(type, "histogram") == 0) {
            if (strncmp(rest, "_bucket{", 8) == 0) {
                cr_assert_geq(v, last_bucket, "buckets not cumulative: %s", line);
                last_bucket = strstr(rest, "le=\"+Inf\"") ? -2 - v : v;     /* remember +Inf's count */
            } else if (strncmp(rest, "_count", 6) == 0) {
                cr_assert_eq(-2 - last_bucket, v, "_count differs from the +Inf bucket: %s", line);
                last_bucket = -1;
            } else {
                cr_assert(strncmp(rest, "_sum", 4) == 0, "unexpected histogram sample: %s", line);
            }
        } else {
            cr_assert(*rest == ' ' || *rest == '{', "sample %s has a suffix", line);
        }
    }
    free(copy);
}

/* ---- helpers --------------------------------------------------------------------------- */

static int broker_http;

/* The broker with --data, --http on a free port, and extra arguments (NULL-terminated). */
static void start_broker(const char *const extra[])
{
    static char data[512], http[64];
    snprintf(data, sizeof data, "%s/data", net.dir);
    broker_http = net_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", broker_http);
    const char *args[32] = {"--data", data, "--http", http, "--heartbeat-ms", "100"};
    size_t k = 6;
    for (size_t i = 0; extra && extra[i] && k < 31; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    net_start_broker_open(&net, args);
    wait_status(broker_http, "/healthz", 200);
}


static void submit(hx_client_t *c, const char *service, const char *type, const void *payload, size_t len)
{
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = service;
    m.type = type;
    m.payload = payload;
    m.payload_len = len;
    int rc = hx_client_submit(c, &m, 1);
    cr_assert_eq(rc, 0, "submit to %s: %s (%s)", service, hx_strerror(rc), hx_client_error(c));
}

static pid_t start_worker(const char *mode, const char *service, const char *to, const char *marker)
{
    const char *argv[] = {net_bin("tests/hx-test-worker"), "--broker", net.endpoint, "--mode", mode, "--service",
                          service, "--to", to, marker ? "--marker" : NULL, marker, NULL};
    char name[48];
    snprintf(name, sizeof name, "%s-%s", mode, service);
    return net_spawn(&net, name, argv);
}

/* ---- the broker's numbers ----------------------------------------------------------------- */

enum { N = 5, FETCH = 3, ACK = 2 };

/* The clinic sessions (hx_client, synchronous) send nothing while idle: a liveness window of
 * 10 s keeps them open through the waits, however slow the machine, so counts are exact. */
#define LONG_LIVENESS "--liveness", "100"

/* N messages to "echo" (a worker acks each, forwarding it to clinic-b's mailbox), one to
 * "poison" (a worker nacks it; with --max-attempts 1 it is dead-lettered at once); clinic-b
 * fetches FETCH of its N and acks ACK of them. The two clinics stay connected. */
static void workload(hx_client_t **a, hx_client_t **b)
{
    start_worker("echo", "echo", "clinic-b", NULL);
    start_worker("fail", "poison", "clinic-b", NULL);
    wait_metric(broker_http, "handoff_broker_peers{role=\"worker\"}", 2);
    *a = net_session(&net, HX_ROLE_CLINIC, "clinic-a");
    *b = net_session(&net, HX_ROLE_CLINIC, "clinic-b");
    for (int i = 0; i < N; i++)
        submit(*a, "echo", "test.n", "x", 1);
    submit(*a, "poison", "test.n", "p", 1);
    wait_metric(broker_http, "handoff_broker_mailbox_depth{mailbox=\"clinic-b\"}", N);
    wait_metric(broker_http, "handoff_broker_dlq_messages", 1);
    wait_metric(broker_http, "handoff_broker_messages_acked_total", N);
    hx_batch_t *batch = NULL;
    cr_assert_eq(hx_client_fetch(*b, FETCH, &batch), 0);
    cr_assert_eq(batch->count, FETCH);
    uint8_t ids[ACK][HX_ID_LEN];
    for (int i = 0; i < ACK; i++)
        memcpy(ids[i], batch->msgs[i].id, HX_ID_LEN);
    hx_batch_destroy(&batch);
    cr_assert_eq(hx_client_ack(*b, (const uint8_t (*)[HX_ID_LEN])ids, ACK), 0);
    wait_metric(broker_http, "handoff_broker_messages_acked_total", N + ACK);
}

Test(metrics, broker_counts)
{
    const char *extra[] = {"--max-attempts", "1", "--backoff-ms", "20", LONG_LIVENESS, NULL};
    start_broker(extra);
    hx_client_t *a, *b;
    workload(&a, &b);
    char *t = scrape(broker_http);
    check_format(t);
    struct {
        const char *series;
        double want;
    } want[] = {
        {"handoff_broker_messages_accepted_total", N + 1 + N},      /* inputs, the poison, outputs */
        {"handoff_broker_messages_delivered_total", N + 1 + FETCH},
        {"handoff_broker_messages_acked_total", N + ACK},
        {"handoff_broker_messages_nacked_total", 1},
        {"handoff_broker_messages_redelivered_total", 0},
        {"handoff_broker_messages_dead_lettered_total", 1},
        {"handoff_broker_dlq_messages", 1},
        {"handoff_broker_queue_depth{queue=\"echo\"}", 0},
        {"handoff_broker_queue_inflight{queue=\"echo\"}", 0},
        {"handoff_broker_queue_bytes{queue=\"echo\"}", 0},
        {"handoff_broker_queue_workers{queue=\"echo\"}", 1},
        {"handoff_broker_queue_workers{queue=\"poison\"}", 1},
        {"handoff_broker_queue_oldest_age_seconds{queue=\"echo\"}", 0},
        {"handoff_broker_mailbox_depth{mailbox=\"clinic-b\"}", N - FETCH},
        {"handoff_broker_mailbox_inflight{mailbox=\"clinic-b\"}", FETCH - ACK},
        {"handoff_broker_peers{role=\"clinic\"}", 2},
        {"handoff_broker_peers{role=\"worker\"}", 2},
        {"handoff_broker_peers{role=\"admin\"}", 0},
        {"handoff_broker_peers_expired_total", 0},
        {"handoff_broker_auth_refused_total", 0},
        {"handoff_broker_refused_total{code=\"busy\"}", 0},
        {"handoff_broker_ready", 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect_eq(sample(t, want[i].series), want[i].want, "%s = %g, want %g", want[i].series,
                     sample(t, want[i].series), want[i].want);
    cr_expect_gt(sample(t, "handoff_broker_mailbox_bytes{mailbox=\"clinic-b\"}"), 0);
    cr_expect_gt(sample(t, "handoff_broker_store_bytes"), 0);
    cr_expect_gt(sample(t, "handoff_broker_fsync_seconds_count"), 0, "group commits were timed");
    cr_expect_eq(sample(t, "handoff_broker_fsync_seconds_count"),
                 sample(t, "handoff_broker_fsync_seconds_bucket{le=\"+Inf\"}"));
    free(t);

    /* a refusal is counted under its code: a name the broker does not take is bad-field */
    hx_msg_t bad = {0};
    hx_id_random(bad.id);
    bad.to_kind = HX_TO_SERVICE;
    bad.to = "no such name!";
    cr_assert_neq(hx_client_submit(a, &bad, 1), 0);
    wait_metric(broker_http, "handoff_broker_refused_total{code=\"bad-field\"}", 1);

    /* oldest age: a message nobody serves gets older */
    submit(a, "unserved", "test.n", "u", 1);
    metric_cond_t older = {broker_http, "handoff_broker_queue_depth{queue=\"unserved\"}", 1};
    cr_assert(net_wait(metric_is, &older, WAIT_MS));
    char *t2 = scrape(broker_http);
    double age = sample(t2, "handoff_broker_queue_oldest_age_seconds{queue=\"unserved\"}");
    free(t2);
    cr_expect(age >= 0 && age < 3600, "oldest age %g", age);
    hx_client_destroy(&a);
    hx_client_destroy(&b);
}

Test(metrics, stats_op)
{
    const char *extra[] = {"--max-attempts", "1", "--backoff-ms", "20", LONG_LIVENESS, NULL};
    start_broker(extra);
    hx_client_t *a, *b;
    workload(&a, &b);
    /* the broker's counters: an admin session's (it counts as one) */
    hx_client_t *adm = net_session(&net, HX_ROLE_ADMIN, "ops");
    char *text = NULL;
    int rc = hx_client_stats(adm, &text);
    cr_assert_eq(rc, 0, "stats: %s (%s)", hx_strerror(rc), hx_client_error(adm));
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    cr_assert_not_null(j, "stats is not JSON (%s): %s", e.text, text);
    json_int_t uptime = -1, dlq = -1, dlq_pinned = -1;
    json_t *queues, *mailboxes, *totals, *peers, *store;
    cr_assert_eq(json_unpack_ex(j, &e, JSON_STRICT, "{s:I, s:o, s:o, s:I, s:I, s:o, s:o, s:o}", "uptime_ms", &uptime,
                                "queues", &queues, "mailboxes", &mailboxes, "dlq", &dlq, "dlq_pinned_bytes",
                                &dlq_pinned, "totals", &totals, "peers", &peers, "store", &store),
                 0, "shape: %s in %s", e.text, text);
    cr_expect_geq(uptime, 0);
    cr_expect_eq(dlq, 1);
    cr_expect_geq(dlq_pinned, 0);
    json_int_t acc, del, ack, red, dead, refused;
    cr_assert_eq(json_unpack_ex(totals, &e, JSON_STRICT, "{s:I, s:I, s:I, s:I, s:I, s:I}", "accepted", &acc,
                                "delivered", &del, "acked", &ack, "redelivered", &red, "dead_lettered", &dead,
                                "refused", &refused),
                 0, "totals: %s", e.text);
    cr_expect_eq(acc, N + 1 + N);
    cr_expect_eq(del, N + 1 + FETCH);
    cr_expect_eq(ack, N + ACK);
    cr_expect_eq(red, 0);
    cr_expect_eq(dead, 1);
    cr_expect_eq(refused, 0, "%s", text);
    json_int_t clinic, worker, admin;
    cr_assert_eq(json_unpack_ex(peers, &e, JSON_STRICT, "{s:I, s:I, s:I}", "clinic", &clinic, "worker", &worker,
                                "admin", &admin),
                 0, "peers: %s", e.text);
    cr_expect_eq(clinic, 2);
    cr_expect_eq(worker, 2);
    cr_expect_eq(admin, 1);
    json_int_t disk, fsyncs, held, moved, moved_bytes;
    cr_assert_eq(json_unpack_ex(store, &e, JSON_STRICT, "{s:I, s:I, s:I, s:I, s:I}", "bytes_on_disk", &disk,
                                "fsyncs", &fsyncs, "held_bytes", &held, "compacted_messages", &moved,
                                "compacted_bytes", &moved_bytes),
                 0, "store: %s", e.text);
    cr_expect_gt(disk, 0);
    cr_expect_gt(held, 0, "the dead letter and clinic-b's messages are held");
    cr_expect_lt(held, disk);
    cr_expect_eq(moved, 0, "a small log is not compacted");
    cr_expect_eq(moved_bytes, 0);
    cr_expect_gt(fsyncs, 0);
    cr_expect_eq((double)fsyncs, metric(broker_http, "handoff_broker_fsync_seconds_count"));

    bool echo = false, poison = false, mb = false;
    size_t i;
    json_t *q;
    json_array_foreach(queues, i, q) {
        const char *name;
        json_int_t depth, inflight, bytes, in, out, age, workers, pinned;
        cr_assert_eq(json_unpack_ex(q, &e, JSON_STRICT, "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name",
                                    &name, "depth", &depth, "inflight", &inflight, "bytes", &bytes, "in", &in, "out",
                                    &out, "oldest_age_ms", &age, "workers", &workers, "pinned_bytes", &pinned),
                     0, "queues[%zu]: %s", i, e.text);
        if (strcmp(name, "echo") == 0 || strcmp(name, "poison") == 0) {
            echo |= name[0] == 'e';
            poison |= name[0] == 'p';
            cr_expect_eq(depth, 0);
            cr_expect_eq(inflight, 0);
            cr_expect_eq(bytes, 0);
            cr_expect_eq(age, 0);
            cr_expect_eq(workers, 1);
            cr_expect_eq(pinned, 0, "an empty queue pins nothing");
            /* echo: N in, N acked out; poison: 1 in, dead-lettered (not out) */
            cr_expect_eq(in, name[0] == 'e' ? N : 1, "%s in", name);
            cr_expect_eq(out, name[0] == 'e' ? N : 0, "%s out", name);
        }
    }
    json_array_foreach(mailboxes, i, q) {
        const char *name;
        json_int_t depth, bytes, in, out, age, pinned;
        cr_assert_eq(json_unpack_ex(q, &e, JSON_STRICT, "{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "name", &name, "depth",
                                    &depth, "bytes", &bytes, "in", &in, "out", &out, "oldest_age_ms", &age,
                                    "pinned_bytes", &pinned),
                     0, "mailboxes[%zu]: %s", i, e.text);
        if (strcmp(name, "clinic-b") == 0) {
            mb = true;
            cr_expect_eq(depth, N - FETCH);
            cr_expect_gt(bytes, 0);
            cr_expect_eq(in, N, "clinic-b in: the echoes");
            cr_expect_eq(out, ACK, "clinic-b out: what it acked");
            cr_expect_geq(age, 0);
            cr_expect_leq(pinned, disk, "it pins at most the whole log");
        }
    }
    cr_expect(echo && poison && mb, "queues or mailboxes missing: %s", text);
    json_decref(j);
    free(text);

    /* a clinic sees its own mailbox only: no other clinic's, no totals */
    cr_assert_eq(hx_client_stats(a, &text), 0, "%s", hx_client_error(a));
    cr_expect(strstr(text, "\"scope\":\"own\"") && !strstr(text, "totals") && !strstr(text, "clinic-b"), "%s", text);
    free(text);
    cr_expect_eq(hx_client_stats(adm, NULL), HX_EINVAL);
    hx_client_destroy(&adm);
    hx_client_destroy(&a);
    hx_client_destroy(&b);
}

static bool file_cond(void *path)
{
    return net_file_exists(path);
}

Test(metrics, expired_peer)
{
    const char *extra[] = {"--max-attempts", "3", "--backoff-ms", "20", NULL};
    start_broker(extra);
    char marker[512];
    snprintf(marker, sizeof marker, "%s/held", net.dir);
    pid_t w = start_worker("hold", "slow", "clinic-b", marker);
    hx_client_t *a = net_session(&net, HX_ROLE_CLINIC, "clinic-a");
    submit(a, "slow", "test.n", "s", 1);
    cr_assert(net_wait(file_cond, marker, WAIT_MS), "the worker never got the message");
    wait_metric(broker_http, "handoff_broker_queue_inflight{queue=\"slow\"}", 1);
    net_kill9(&net, w);
    wait_metric(broker_http, "handoff_broker_peers_expired_total", 1);
    wait_metric(broker_http, "handoff_broker_queue_workers{queue=\"slow\"}", 0);
    wait_metric(broker_http, "handoff_broker_peers{role=\"worker\"}", 0);
    hx_client_destroy(&a);
}

static bool metric_positive(void *arg)
{
    metric_cond_t *c = arg;
    return metric(c->port, c->series) >= 1;
}

/* Writes a new key pair: the secret key to dir/<name>.key; the public key in pub. */
static void make_key(const char *name, char pub[HX_KEY_Z85 + 1], char sec[HX_KEY_Z85 + 1])
{
    char path[512], err[256], line[HX_KEY_Z85 + 2];
    cr_assert_eq(hx_key_generate(pub, sec), 0);
    snprintf(path, sizeof path, "%s/%s.key", net.dir, name);
    snprintf(line, sizeof line, "%s\n", sec);
    cr_assert_eq(hx_key_file_write(path, line, 0600, err, sizeof err), 0, "%s", err);
}

Test(metrics, auth_refused)
{
    char bpub[HX_KEY_Z85 + 1], bsec[HX_KEY_Z85 + 1], cpub[HX_KEY_Z85 + 1], csec[HX_KEY_Z85 + 1];
    char upub[HX_KEY_Z85 + 1], usec[HX_KEY_Z85 + 1], allow[512], bkey[512];
    make_key("broker", bpub, bsec);
    make_key("clinic-a", cpub, csec);
    cr_assert_eq(hx_key_generate(upub, usec), 0);         /* a key nobody allowed */
    snprintf(allow, sizeof allow, "%s/allow.txt", net.dir);
    snprintf(bkey, sizeof bkey, "%s/broker.key", net.dir);
    FILE *f = fopen(allow, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s clinic clinic-a\n", cpub);
    cr_assert_eq(fclose(f), 0);
    const char *extra[] = {"--curve-secret", bkey, "--allow", allow, LONG_LIVENESS, NULL};
    start_broker(extra);
    char err[256];
    hx_client_opts_t ok = {.endpoint = net.endpoint, .clinic = "clinic-a", .curve_server_key = bpub,
                           .curve_public = cpub, .curve_secret = csec, .timeout_ms = 5000};
    hx_client_t *c = hx_client_connect(&ok, err, sizeof err);
    cr_assert_not_null(c, "the allowed key: %s", err);
    cr_expect_eq(metric(broker_http, "handoff_broker_auth_refused_total"), 0);
    hx_client_opts_t bad = ok;
    bad.curve_public = upub;
    bad.curve_secret = usec;
    hx_client_t *u = NULL;
    cr_expect_eq(hx_client_open(&bad, &u, err, sizeof err), HX_EDENIED, "an unknown key is refused: %s", err);
    cr_expect_null(u, "an unknown key has no session");
    hx_client_destroy(&u);
    /* the broker counts it (at least once: a client may connect more than once) */
    metric_cond_t refused = {broker_http, "handoff_broker_auth_refused_total", 1};
    cr_assert(net_wait(metric_positive, &refused, WAIT_MS), "no ZAP denial counted (see %s)", net.dir);
    cr_expect_eq(metric(broker_http, "handoff_broker_peers{role=\"clinic\"}"), 1);
    hx_client_destroy(&c);
}

/* ---- readiness ----------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

Test(metrics, readyz_store_faults)
{
    char faults[512];
    snprintf(faults, sizeof faults, "%s/faults", net.dir);
    const char *extra[] = {"--test-faults", faults, LONG_LIVENESS, NULL};
    start_broker(extra);
    wait_status(broker_http, "/readyz", 200);
    hx_client_t *a = net_session(&net, HX_ROLE_CLINIC, "clinic-a");
    write_file(faults, "enospc");
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = "echo";
    m.type = "test.n";
    m.payload = (const uint8_t *)"x";
    m.payload_len = 1;
    cr_assert_neq(hx_client_submit(a, &m, 1), 0, "a submit while the disk is full is refused");
    wait_status(broker_http, "/readyz", 503);
    http_reply_t r = http_get(broker_http, "/readyz");
    cr_expect_eq(r.status, 503);
    cr_expect(r.body && strstr(r.body, "not ready: ") == r.body && strstr(r.body, "full"), "reason: %s", r.body);
    cr_expect(r.body && strchr(r.body, '\n') == r.body + strlen(r.body) - 1, "one line: %s", r.body);
    reply_free(&r);
    cr_expect_eq(http_status(broker_http, "/healthz"), 200, "alive while not ready");
    cr_expect_eq(metric(broker_http, "handoff_broker_ready"), 0);
    cr_expect_geq(metric(broker_http, "handoff_broker_refused_total{code=\"unavailable\"}"), 1);
    cr_assert_eq(unlink(faults), 0);
    wait_status(broker_http, "/readyz", 200);
    cr_expect_eq(metric(broker_http, "handoff_broker_ready"), 1);
    cr_assert_eq(hx_client_submit(a, &m, 1), 0, "accepting again: %s", hx_client_error(a));
    hx_client_destroy(&a);
}

/* A referral from the sample set, packed, with its referring clinic in *clinic. */
static uint8_t *sample_referral(const char *file, size_t *len, char *clinic, size_t cap)
{
    json_error_t e;
    json_t *j = json_load_file(net_src(file), 0, &e);
    cr_assert_not_null(j, "%s: %s", file, e.text);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_from_json(j, &errs);
    json_decref(j);
    cr_assert_not_null(r, "%s does not convert", file);
    snprintf(clinic, cap, "%s", r->referrer ? r->referrer->clinic_id : "");
    *len = handoff__referral__get_packed_size(r);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    handoff__referral__pack(r, buf);
    hx_referral_free(r);
    return buf;
}

Test(metrics, service_readyz)
{
    char ep[64], http[64], db[512];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", net_free_port());
    int port = net_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    snprintf(db, sizeof db, "%s/intake.db", net.dir);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", ep, "--db", db, "--http", http,
                            "--heartbeat-ms", "100", NULL};
    net_spawn(&net, "intake", intake);
    wait_status(port, "/healthz", 200);
    http_reply_t r = http_get(port, "/readyz");
    cr_expect_eq(r.status, 503, "no broker yet: %s", r.body);
    cr_expect(r.body && strstr(r.body, "not ready: ") == r.body, "%s", r.body);
    reply_free(&r);
    cr_expect_eq(metric(port, "handoff_service_connected"), 0);

    const char *extra[] = {"--bind", ep, LONG_LIVENESS, NULL};
    start_broker(extra);
    cr_assert_str_eq(net.endpoint, ep);
    wait_status(port, "/readyz", 200);
    cr_expect_eq(metric(port, "handoff_service_connected"), 1);

    /* one valid referral, one undecodable, one of another type */
    char clinic[64];
    size_t len;
    uint8_t *ref = sample_referral("deploy/sample/referrals/01-ankle-sprain.json", &len, clinic, sizeof clinic);
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, clinic);
    submit(c, "intake", "handoff.Referral", ref, len);
    submit(c, "intake", "handoff.Referral", "\xff\xff\xff", 3);
    submit(c, "intake", "test.other", "x", 1);
    free(ref);
    wait_metric(port, "handoff_service_processing_seconds_count{service=\"intake\"}", 3);
    char *t = scrape(port);
    check_format(t);
    cr_expect_eq(sample(t, "handoff_intake_referrals_total{outcome=\"accepted\"}"), 1);
    cr_expect_eq(sample(t, "handoff_intake_referrals_total{outcome=\"rejected\"}"), 1);
    cr_expect_eq(sample(t, "handoff_intake_referrals_total{outcome=\"ignored\"}"), 1);
    cr_expect_eq(sample(t, "handoff_service_messages_total{result=\"ok\"}"), 3);
    cr_expect_eq(sample(t, "handoff_service_messages_total{result=\"failed\"}"), 0);
    cr_expect_eq(sample(t, "handoff_service_processing_seconds_bucket{service=\"intake\",le=\"+Inf\"}"), 3);
    free(t);
    hx_client_destroy(&c);

    net_stop(&net, net_pid(&net, "broker"), SIGTERM);      /* it says BYE: the session is gone */
    wait_status(port, "/readyz", 503);
    cr_expect_eq(http_status(port, "/healthz"), 200);
    cr_expect_eq(http_status(port, "/nothing"), 404);
}

/* ---- logs and flags ---------------------------------------------------------------------- */

/* Every line of dir/<name>.log parses as one JSON object of the agreed shape; returns lines. */
static size_t check_json_log(const char *name, const char *program)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.log", net.dir, name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char line[8192];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        cr_assert_not_null(j, "%s line %zu is not JSON (%s): %s", name, n + 1, e.text, line);
        const char *ts, *level, *prog, *msg;
        cr_assert_eq(json_unpack_ex(j, &e, JSON_STRICT, "{s:s, s:s, s:s, s:s}", "ts", &ts, "level", &level,
                                    "program", &prog, "msg", &msg),
                     0, "%s line %zu: %s: %s", name, n + 1, e.text, line);
        cr_expect_str_eq(prog, program);
        cr_expect(strlen(ts) == 24 && ts[10] == 'T' && ts[23] == 'Z', "ts %s", ts);
        cr_expect(!strcmp(level, "debug") || !strcmp(level, "info") || !strcmp(level, "warn") ||
                  !strcmp(level, "error"), "level %s", level);
        json_decref(j);
        n++;
    }
    fclose(f);
    return n;
}

Test(metrics, json_logs)
{
    const char *extra[] = {"--log-format", "json", LONG_LIVENESS, NULL};
    start_broker(extra);
    char db[512];
    snprintf(db, sizeof db, "%s/intake.db", net.dir);
    int port = net_free_port();
    char http[64];
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    setenv("HANDOFF_LOG_FORMAT", "json", 1);            /* the environment works as well as the flag */
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", db,
                            "--http", http, NULL};
    net_spawn(&net, "intake", intake);
    unsetenv("HANDOFF_LOG_FORMAT");
    wait_status(port, "/readyz", 200);
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, "clinic-a");
    submit(c, "intake", "test.other", "x", 1);              /* a warning line with quotes in it */
    wait_metric(port, "handoff_intake_referrals_total{outcome=\"ignored\"}", 1);
    hx_client_destroy(&c);
    net_stop(&net, net_pid(&net, "intake"), SIGTERM);
    net_stop(&net, net_pid(&net, "broker"), SIGTERM);
    cr_expect_gt(check_json_log("broker", "handoff-broker"), 3);
    cr_expect_gt(check_json_log("intake", "handoff-intake"), 2);
}

/* Runs argv to its end; its exit status, and its stderr in err. */
static int run(const char *const argv[], char *err, size_t cap)
{
    int code = -1;
    cr_assert_eq(hx_spawn_run(&(hx_spawn_opts_t){.argv = argv, .err_pipe = true}, NULL, 0, err, cap, &code), 0);
    return code;
}

Test(metrics, bad_flags)
{
    char err[2048];
    const char *b1[] = {net_bin("broker/handoff-broker"), "--plain-tcp-for-tests", "--http", "localhost", NULL};
    cr_expect_eq(run(b1, err, sizeof err), 2);
    cr_expect(strstr(err, "--http") && strstr(err, "HOST:PORT"), "%s", err);
    const char *b2[] = {net_bin("broker/handoff-broker"), "--plain-tcp-for-tests", "--http", "127.0.0.1:70000", NULL};
    cr_expect_eq(run(b2, err, sizeof err), 2);
    cr_expect(strstr(err, "--http"), "%s", err);
    const char *b3[] = {net_bin("broker/handoff-broker"), "--plain-tcp-for-tests", "--log-format", "xml", NULL};
    cr_expect_eq(run(b3, err, sizeof err), 2);
    cr_expect(strstr(err, "--log-format") && strstr(err, "text or json"), "%s", err);
    const char *s1[] = {net_bin("services/intake/handoff-intake"), "--http", "::1:80", NULL};
    cr_expect_eq(run(s1, err, sizeof err), 2);
    cr_expect(strstr(err, "handoff-intake: --http"), "%s", err);
    const char *s2[] = {net_bin("services/triage/handoff-triage"), "--log-format", "JSON", NULL};
    cr_expect_eq(run(s2, err, sizeof err), 2);
    cr_expect(strstr(err, "handoff-triage: --log-format"), "%s", err);
}
