/* hx-test-worker — a worker for integration tests, built on the client library:
 *   --mode echo   forward each message to mailbox --to, payload "attempt=N;" + input
 *   --mode hold   on the first message write --marker and then hang (to be killed) */
#include "hx_log.h"
#include "hx_worker.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *mode, *marker, *to;
} opts_t;

static int handle(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    opts_t *o = arg;
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
                                         {NULL, 0, NULL, 0}};
    opts_t o = {"echo", NULL, "sink"};
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
        default: return 2;
        }
    }
    if (!wo.endpoint || (strcmp(o.mode, "hold") == 0 && !o.marker)) {
        fprintf(stderr, "usage: hx-test-worker --broker E [--service S] [--mode echo|hold --marker F] [--to M]\n");
        return 2;
    }
    hx_log_init("test-worker", HX_LOG_INFO);
    char err[256];
    hx_worker_t *w = hx_worker_new(&wo, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = hx_worker_run(w, handle, &o);
    hx_worker_destroy(&w);
    return rc ? 1 : 0;
}
