/* handoff-broker — the daemon: one ROUTER socket on a libuv loop, feeding hx_router. */
#include "hx_log.h"
#include "hx_opt.h"
#include "hx_router.h"
#include "hx_store.h"
#include "hx_wire.h"
#include "hx_zuv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zmq.h>

static const char usage[] =
    "usage: handoff-broker [options]\n"
    "\n"
    "The Handoff message broker: service queues, clinic mailboxes, heartbeats, redelivery.\n"
    "\n"
    "options (each also from the environment variable shown):\n"
    "  --bind ENDPOINT       where to listen [HANDOFF_BIND, default tcp://127.0.0.1:5555];\n"
    "                        tcp://127.0.0.1:* picks a free port (see --ready-file)\n"
    "  --heartbeat-ms N      heartbeat interval, 10..60000 [HANDOFF_HEARTBEAT_MS, 1000]\n"
    "  --liveness N          missed heartbeats before a peer is dead, 2..100 [HANDOFF_LIVENESS, 3]\n"
    "  --max-frame BYTES     largest frame accepted [HANDOFF_MAX_FRAME, 1048576]\n"
    "  --max-queue N         messages per service queue or mailbox [HANDOFF_MAX_QUEUE, 100000]\n"
    "  --dedup-window N      message ids remembered for exact resubmits [HANDOFF_DEDUP_WINDOW, 100000]\n"
    "  --ready-file PATH     write the bound endpoint to PATH once listening\n"
    "  --log-level LEVEL     debug, info, warn, error [HANDOFF_LOG_LEVEL, info]\n"
    "  -h, --help            this text\n"
    "\n"
    "example:\n"
    "  handoff-broker --bind tcp://0.0.0.0:5555 --heartbeat-ms 500\n"
    "\n"
    "Queues are held in memory: a restart loses what was waiting.\n"
    "SIGINT or SIGTERM: says BYE to every peer and exits 0.\n";

typedef struct {
    uv_loop_t loop;
    void *zctx;
    void *sock;
    hx_zuv_t zuv;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    hx_router_t *router;
    hx_store_t *store;
} broker_t;

static int send_frame(void *arg, const uint8_t *peer, size_t peer_len, const uint8_t *frame, size_t len)
{
    broker_t *b = arg;
    if (zmq_send(b->sock, peer, peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;                              /* EHOSTUNREACH (gone) or EAGAIN (not reading) */
    if (zmq_send(b->sock, frame, len, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

static void on_message(hx_zuv_t *z, zmq_msg_t *parts, size_t n, void *arg)
{
    (void)z;
    broker_t *b = arg;
    uint64_t now = uv_now(&b->loop);
    const uint8_t *rid = zmq_msg_data(&parts[0]);
    size_t rid_len = zmq_msg_size(&parts[0]);
    if (n != 2)
        hx_router_on_bad_frames(b->router, rid, rid_len, n - 1, now);
    else
        hx_router_on_frame(b->router, rid, rid_len, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), now);
}

static void on_tick(uv_timer_t *t)
{
    broker_t *b = t->data;
    uv_update_time(&b->loop);
    hx_router_tick(b->router, uv_now(&b->loop));
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    broker_t *b = s->data;
    hx_info("signal %d: saying bye to peers and stopping", signum);
    hx_router_goodbye(b->router);
    uv_stop(&b->loop);
}

static int write_ready_file(const char *path, void *sock)
{
    char endpoint[256];
    size_t len = sizeof endpoint;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0)
        return -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", endpoint);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *bind = NULL, *hb = NULL, *live = NULL, *maxf = NULL, *maxq = NULL, *dedup = NULL, *ready = NULL,
               *level = NULL;
    static const struct option opts[] = {
        {"bind", required_argument, NULL, 'b'},         {"heartbeat-ms", required_argument, NULL, 'H'},
        {"liveness", required_argument, NULL, 'L'},     {"max-frame", required_argument, NULL, 'F'},
        {"max-queue", required_argument, NULL, 'Q'},    {"dedup-window", required_argument, NULL, 'D'},
        {"ready-file", required_argument, NULL, 'r'},   {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},               {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': bind = optarg; break;
        case 'H': hb = optarg; break;
        case 'L': live = optarg; break;
        case 'F': maxf = optarg; break;
        case 'Q': maxq = optarg; break;
        case 'D': dedup = optarg; break;
        case 'r': ready = optarg; break;
        case 'l': level = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "handoff-broker: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    hx_log_level_t lvl;
    if (hx_log_level_parse(hx_opt_pick(level, "HANDOFF_LOG_LEVEL", "info"), &lvl)) {
        fprintf(stderr, "handoff-broker: --log-level: must be debug, info, warn or error\n");
        return 2;
    }
    hx_log_init("broker", lvl);
    hx_router_config_t cfg = {0};
    bind = hx_opt_pick(bind, "HANDOFF_BIND", "tcp://127.0.0.1:5555");
    if (hx_opt_u32("handoff-broker", "--heartbeat-ms", hx_opt_pick(hb, "HANDOFF_HEARTBEAT_MS", "1000"), 10, 60000,
                   &cfg.heartbeat_ms) ||
        hx_opt_u32("handoff-broker", "--liveness", hx_opt_pick(live, "HANDOFF_LIVENESS", "3"), 2, 100, &cfg.liveness) ||
        hx_opt_u32("handoff-broker", "--max-frame", hx_opt_pick(maxf, "HANDOFF_MAX_FRAME", "1048576"), 1024,
                   64u << 20, &cfg.max_frame) ||
        hx_opt_u32("handoff-broker", "--max-queue", hx_opt_pick(maxq, "HANDOFF_MAX_QUEUE", "100000"), 1, 100000000,
                   &cfg.max_queue) ||
        hx_opt_u32("handoff-broker", "--dedup-window", hx_opt_pick(dedup, "HANDOFF_DEDUP_WINDOW", "100000"), 0,
                   100000000, &cfg.dedup_window))
        return 2;

    broker_t b;
    memset(&b, 0, sizeof b);
    int rc = 1;
    uv_loop_init(&b.loop);
    b.zctx = zmq_ctx_new();
    b.sock = zmq_socket(b.zctx, ZMQ_ROUTER);
    int one = 1, zero = 0, hwm = 100000;
    int64_t maxmsg = (int64_t)cfg.max_frame + 1024;  /* libzmq drops a peer beyond this; we refuse smaller */
    zmq_setsockopt(b.sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(b.sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b.sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b.sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b.sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(b.sock, bind) != 0) {
        fprintf(stderr, "handoff-broker: --bind %s: %s\n", bind, zmq_strerror(errno));
        goto fail_socket;
    }
    b.store = hx_store_memory_new();
    cfg.send = send_frame;
    cfg.send_arg = &b;
    cfg.store = b.store;
    b.router = hx_router_new(&cfg);
    if (!b.store || !b.router) {
        fprintf(stderr, "handoff-broker: out of memory\n");
        goto fail_router;
    }
    if (hx_zuv_init(&b.zuv, &b.loop, b.sock, on_message, &b) != 0) {
        fprintf(stderr, "handoff-broker: cannot watch the socket\n");
        goto fail_router;
    }
    uv_timer_init(&b.loop, &b.tick);
    b.tick.data = &b;
    uint64_t period = cfg.heartbeat_ms / 4 ? cfg.heartbeat_ms / 4 : 1;
    uv_timer_start(&b.tick, on_tick, period, period);
    uv_signal_init(&b.loop, &b.sigint);
    uv_signal_init(&b.loop, &b.sigterm);
    b.sigint.data = b.sigterm.data = &b;
    uv_signal_start(&b.sigint, on_signal, SIGINT);
    uv_signal_start(&b.sigterm, on_signal, SIGTERM);
    if (ready && write_ready_file(ready, b.sock) != 0) {
        fprintf(stderr, "handoff-broker: --ready-file %s: %s\n", ready, strerror(errno));
        goto fail_loop;
    }
    hx_info("listening on %s (heartbeat %u ms x %u, max frame %u bytes)", bind, cfg.heartbeat_ms, cfg.liveness,
            cfg.max_frame);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    rc = 0;

fail_loop:
    hx_zuv_close(&b.zuv, NULL);
    uv_walk(&b.loop, close_walk, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
fail_router:
    hx_router_destroy(&b.router);
    hx_store_destroy(&b.store);
fail_socket:
    zmq_close(b.sock);
    zmq_ctx_term(b.zctx);
    uv_loop_close(&b.loop);
    if (rc == 0)
        hx_info("stopped");
    return rc;
}
