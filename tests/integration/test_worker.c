/* hx-test-worker — a worker for integration tests, built on the client library:
 *   --mode echo   forward each message to mailbox --to, payload "attempt=N;" + input
 *   --mode hold   on the first message write --marker and then hang (to be killed)
 *   --mode fail   nack every message with the error "always fails (test)"
 *   --log FILE    (any mode) append "<attempt> <CLOCK_MONOTONIC ms> <32-hex id>" per
 *                 message received, flushed at once, so a test can read attempts and gaps
 *   --batch-log FILE
 *                 handle each delivered burst in a "transaction" (hx_worker_set_batch):
 *                 append "begin", then "<32-hex id> <attempt>" per message, then "commit ok"
 *                 or "commit failed"
 *   --fail-commits N   the first N commits fail (their bursts must be nacked, outputs unsent)
 *   --poison TEXT      a message whose payload is TEXT is nacked ("poison (test)")
 *   --post N           once serving, post N messages at once to mailbox --to (hx_worker_post),
 *                      payloads "post=0" .. "post=N-1", ids 'P' then the index (big-endian)
 *   --stall-ms M       with --post: the loop busy for M ms first (a long tick), so that the
 *                      posts may go out after the broker expired the session */
#include "hx_log.h"
#include "hx_worker.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *mode, *marker, *to, *poison;
    FILE *log, *batch_log;
    int fail_commits;
    unsigned post;          /* --post: how many, posted on the first tick */
    unsigned stall_ms;      /* --stall-ms: the tick's loop held that long before posting */
    unsigned ticks;
    bool posted;
} opts_t;

static void post_all(hx_worker_t *w, void *arg)
{
    opts_t *o = arg;
    if (o->posted || (o->stall_ms && ++o->ticks < 10))   /* a stall: once surely serving */
        return;
    o->posted = true;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do                              /* the loop held, as by a long computation */
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < (long)o->stall_ms);
    for (unsigned i = 0; i < o->post; i++) {
        uint8_t id[HX_ID_LEN] = {'P'};
        for (int k = 0; k < 4; k++)
            id[HX_ID_LEN - 1 - k] = (uint8_t)(i >> (8 * k));
        char payload[32];
        int n = snprintf(payload, sizeof payload, "post=%u", i);
        int rc = hx_worker_post(w, id, HX_TO_MAILBOX, o->to, "test.post", payload, (size_t)n);
        if (rc != 0)
            hx_warn("post %u of %u: error %d", i, o->post, rc);
    }
}

static int batch_begin(void *arg, char *err, size_t errcap)
{
    (void)err;
    (void)errcap;
    opts_t *o = arg;
    fprintf(o->batch_log, "begin\n");
    fflush(o->batch_log);
    return 0;
}

static int batch_commit(void *arg, char *err, size_t errcap)
{
    opts_t *o = arg;
    bool fail = o->fail_commits > 0;
    o->fail_commits -= fail;
    fprintf(o->batch_log, "commit %s\n", fail ? "failed" : "ok");
    fflush(o->batch_log);
    if (fail)
        snprintf(err, errcap, "commit fails (test)");
    return fail ? -1 : 0;
}

static void batch_rollback(void *arg)
{
    (void)arg;
}

static void log_received(opts_t *o, const hx_msg_t *in)
{
    if (!o->log)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char hex[33];
    hx_id_hex(in->id, hex);
    fprintf(o->log, "%u %lld %s\n", in->attempt, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, hex);
    fflush(o->log);
}

static int handle(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    opts_t *o = arg;
    log_received(o, in);
    if (o->batch_log) {
        char hex[33];
        hx_id_hex(in->id, hex);
        fprintf(o->batch_log, "%s %u\n", hex, in->attempt);
        fflush(o->batch_log);
    }
    if (o->poison && in->payload_len == strlen(o->poison) && !memcmp(in->payload, o->poison, in->payload_len)) {
        snprintf(err, errcap, "poison (test)");
        return -1;
    }
    if (strcmp(o->mode, "fail") == 0) {
        snprintf(err, errcap, "always fails (test)");
        return -1;
    }
    if (strcmp(o->mode, "hold") == 0) {
        char hex[33];
        hx_id_hex(in->id, hex);
        FILE *f = fopen(o->marker, "w");
        if (f) {
            fprintf(f, "%s\n", hex);
            fclose(f);
        }
        for (;;)
            pause();
    }
    char *buf = malloc(in->payload_len + 32);
    if (!buf) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int n = snprintf(buf, 32, "attempt=%u;", in->attempt);
    memcpy(buf + n, in->payload, in->payload_len);
    int rc = hx_outbox_add(out, HX_TO_MAILBOX, o->to, "test.echo", buf, (size_t)n + in->payload_len);
    free(buf);
    return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"broker", required_argument, NULL, 'b'},
                                         {"service", required_argument, NULL, 's'},
                                         {"mode", required_argument, NULL, 'm'},
                                         {"marker", required_argument, NULL, 'k'},
                                         {"to", required_argument, NULL, 't'},
                                         {"credit", required_argument, NULL, 'c'},
                                         {"log", required_argument, NULL, 'l'},
                                         {"batch-log", required_argument, NULL, 'B'},
                                         {"fail-commits", required_argument, NULL, 'F'},
                                         {"poison", required_argument, NULL, 'p'},
                                         {"post", required_argument, NULL, 'P'},
                                         {"stall-ms", required_argument, NULL, 'S'},
                                         {NULL, 0, NULL, 0}};
    opts_t o = {.mode = "echo", .to = "sink"};
    const char *log = NULL, *batch_log = NULL;
    hx_worker_opts_t wo = {.service = "echo", .credit = 1, .heartbeat_ms = 100};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b': wo.endpoint = optarg; break;
        case 's': wo.service = optarg; break;
        case 'm': o.mode = optarg; break;
        case 'k': o.marker = optarg; break;
        case 't': o.to = optarg; break;
        case 'c': wo.credit = (uint32_t)atoi(optarg); break;
        case 'l': log = optarg; break;
        case 'B': batch_log = optarg; break;
        case 'F': o.fail_commits = atoi(optarg); break;
        case 'p': o.poison = optarg; break;
        case 'P': o.post = (unsigned)atoi(optarg); break;
        case 'S': o.stall_ms = (unsigned)atoi(optarg); break;
        default: return 2;
        }
    }
    int known = !strcmp(o.mode, "echo") || !strcmp(o.mode, "hold") || !strcmp(o.mode, "fail");
    if (!wo.endpoint || !known || (strcmp(o.mode, "hold") == 0 && !o.marker)) {
        fprintf(stderr, "usage: hx-test-worker --broker E [--service S] [--mode echo|fail|hold --marker F] [--to M]"
                        " [--credit N] [--log FILE] [--batch-log FILE [--fail-commits N]] [--poison TEXT] [--post N [--stall-ms M]]\n");
        return 2;
    }
    if (log && !(o.log = fopen(log, "a"))) {
        perror(log);
        return 2;
    }
    if (batch_log && !(o.batch_log = fopen(batch_log, "a"))) {
        perror(batch_log);
        if (o.log)
            fclose(o.log);
        return 2;
    }
    hx_log_init("test-worker", HX_LOG_INFO);
    char err[256];
    hx_worker_t *w = hx_worker_new(&wo, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        if (o.log)
            fclose(o.log);
        if (o.batch_log)
            fclose(o.batch_log);
        return 1;
    }
    if (o.batch_log)
        hx_worker_set_batch(w, &(hx_worker_batch_t){.begin = batch_begin, .commit = batch_commit,
                                                    .rollback = batch_rollback, .arg = &o});
    if (o.post)
        hx_worker_every(w, 100, post_all, &o);
    int rc = hx_worker_run(w, handle, &o);
    hx_worker_destroy(&w);
    if (o.log)
        fclose(o.log);
    if (o.batch_log)
        fclose(o.batch_log);
    return rc ? 1 : 0;
}
