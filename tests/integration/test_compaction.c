/* Integration: the durable broker's disk use follows what it holds, not what has passed.
 * A mailbox nobody reads gets a few messages now and then while HX_COMPACT_MB (default 1024)
 * megabytes of 1 KB messages pass through another mailbox that is read and acked; once the
 * traffic is drained the log must come down to about twice what is held plus a few
 * segments (docs/OPERATIONS.md, "Disk use and compaction"), and after a restart the unread
 * mailbox still holds each of its messages exactly once, intact. No timing is asserted: the
 * waits are on conditions with generous deadlines. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hx_client.h"

#define SEGMENT (8u << 20)
#define MSG 1024
#define BATCH 128
#define WINDOW 20000                    /* submitted to "busy" and not yet fetched, at most */
#define SILENT_EVERY (64u << 20)        /* traffic between two handfuls for "silent" */
#define SILENT_EACH 50

static net_t net;
static char data_dir[512], seg_arg[32];

static void setup(void)
{
    net_init(&net);
    snprintf(data_dir, sizeof data_dir, "%s/data", net.dir);
    snprintf(seg_arg, sizeof seg_arg, "%u", SEGMENT);
}

static void teardown(void)
{
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(compaction, .init = setup, .fini = teardown, .timeout = 3000);

static void start_broker(void)
{
    const char *extra[] = {"--data", data_dir, "--segment-bytes", seg_arg, NULL};
    net_start_broker_open(&net, extra);
}

typedef struct {
    uint64_t target_bytes;
    atomic_ullong busy_sent, busy_fetched, silent_sent;
    atomic_bool stop;
    char fatal[256];
    pthread_mutex_t mu;
} load_t;

static void fatal(load_t *L, const char *what, hx_client_t *c)
{
    pthread_mutex_lock(&L->mu);
    if (!L->fatal[0])
        snprintf(L->fatal, sizeof L->fatal, "%s: %s", what, c ? hx_client_error(c) : "cannot connect");
    pthread_mutex_unlock(&L->mu);
    atomic_store(&L->stop, true);
}

static hx_client_t *session(const char *clinic)
{
    char err[256];
    hx_client_opts_t o = {.endpoint = net.endpoint, .clinic = clinic, .timeout_ms = 30000, .attempts = 1};
    return hx_client_connect(&o, err, sizeof err);
}

static void fill(hx_msg_t *m, char *payload, const char *to, const char *tag, unsigned long long n)
{
    memset(m, 0, sizeof *m);
    hx_id_random(m->id);
    memset(payload, 'x', MSG);
    int k = snprintf(payload, MSG, "%s-%llu;", tag, n);
    payload[k] = 'x';                   /* the NUL snprintf wrote */
    m->to_kind = HX_TO_MAILBOX;
    m->to = to;
    m->type = "test.bulk";
    m->payload = (const uint8_t *)payload;
    m->payload_len = MSG;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Submits 1 KB messages to "busy" in batches until the target is reached, never more than
 * WINDOW ahead of the reader; every SILENT_EVERY bytes a handful to "silent". */
static void *producer(void *arg)
{
    load_t *L = arg;
    hx_client_t *c = session("producer");
    if (!c) {
        fatal(L, "producer", NULL);
        return NULL;
    }
    static hx_msg_t msgs[BATCH];
    static char payloads[BATCH][MSG];
    uint64_t next_silent = 0;
    while (!atomic_load(&L->stop) && atomic_load(&L->busy_sent) * MSG < L->target_bytes) {
        if (atomic_load(&L->busy_sent) - atomic_load(&L->busy_fetched) > WINDOW) {
            nap_ms(5);                  /* a pause while the reader catches up, not a wait for an event */
            continue;
        }
        if (atomic_load(&L->busy_sent) * MSG >= next_silent) {
            next_silent += SILENT_EVERY;
            unsigned long long first = atomic_load(&L->silent_sent);
            for (int i = 0; i < SILENT_EACH; i++)
                fill(&msgs[i], payloads[i], "silent", "silent", first + (unsigned long long)i);
            if (hx_client_submit(c, msgs, SILENT_EACH) != 0) {
                fatal(L, "submit to silent", c);
                break;
            }
            atomic_fetch_add(&L->silent_sent, SILENT_EACH);
        }
        unsigned long long first = atomic_load(&L->busy_sent);
        for (int i = 0; i < BATCH; i++)
            fill(&msgs[i], payloads[i], "busy", "busy", first + (unsigned long long)i);
        if (hx_client_submit(c, msgs, BATCH) != 0) {
            fatal(L, "submit to busy", c);
            break;
        }
        atomic_fetch_add(&L->busy_sent, BATCH);
    }
    hx_client_destroy(&c);
    return NULL;
}

/* Reads and acks "busy" until told to stop. */
static void *reader(void *arg)
{
    load_t *L = arg;
    hx_client_t *c = session("busy");
    if (!c) {
        fatal(L, "reader", NULL);
        return NULL;
    }
    while (!atomic_load(&L->stop)) {
        hx_batch_t *b = NULL;
        if (hx_client_fetch(c, 1000, &b) != 0) {
            fatal(L, "fetch busy", c);
            break;
        }
        if (b->count == 0) {
            hx_batch_destroy(&b);
            nap_ms(5);                  /* polling an empty mailbox */
            continue;
        }
        uint8_t(*ids)[HX_ID_LEN] = calloc(b->count, HX_ID_LEN);
        for (size_t i = 0; i < b->count; i++)
            memcpy(ids[i], b->msgs[i].id, HX_ID_LEN);
        int rc = hx_client_ack(c, (const uint8_t(*)[HX_ID_LEN])ids, b->count);
        free(ids);
        size_t n = b->count;
        hx_batch_destroy(&b);
        if (rc != 0) {
            fatal(L, "ack busy", c);
            break;
        }
        atomic_fetch_add(&L->busy_fetched, n);
    }
    hx_client_destroy(&c);
    return NULL;
}

typedef struct {
    hx_client_t *admin;
    uint64_t disk, held, moved, busy_depth;
} disk_t;

static bool read_stats(disk_t *d)
{
    char *text = NULL;
    if (hx_client_stats(d->admin, &text) != 0)
        return false;
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(root);
    json_t *store = json_object_get(root, "store");
    d->disk = (uint64_t)json_integer_value(json_object_get(store, "bytes_on_disk"));
    d->held = (uint64_t)json_integer_value(json_object_get(store, "held_bytes"));
    d->moved = (uint64_t)json_integer_value(json_object_get(store, "compacted_messages"));
    d->busy_depth = 0;
    size_t i;
    json_t *mb;
    json_array_foreach(json_object_get(root, "mailboxes"), i, mb) {
        if (strcmp(net_jstr(mb, "name"), "busy") == 0)
            d->busy_depth = (uint64_t)json_integer_value(json_object_get(mb, "depth"));
    }
    json_decref(root);
    return true;
}

/* The log is down to about what is held: twice the held bytes plus four segments. */
static bool compacted_down(void *arg)
{
    disk_t *d = arg;
    return read_stats(d) && d->held > 0 && d->disk <= 2 * d->held + 4ull * SEGMENT;
}

static bool all_read(void *arg)
{
    load_t *L = arg;
    return atomic_load(&L->stop) || atomic_load(&L->busy_fetched) >= atomic_load(&L->busy_sent);
}

Test(compaction, an_unread_mailbox_does_not_keep_the_traffic_on_disk)
{
    const char *env = getenv("HX_COMPACT_MB");
    unsigned long mb = env && *env ? strtoul(env, NULL, 10) : 1024;
    cr_assert(mb >= 64, "HX_COMPACT_MB: at least 64");
    start_broker();
    load_t L = {.target_bytes = (uint64_t)mb << 20};
    pthread_mutex_init(&L.mu, NULL);
    time_t t0 = time(NULL);
    pthread_t p, r;
    pthread_create(&r, NULL, reader, &L);
    pthread_create(&p, NULL, producer, &L);
    pthread_join(p, NULL);
    cr_assert(net_wait(all_read, &L, 600000), "the reader took every busy message");
    atomic_store(&L.stop, true);
    pthread_join(r, NULL);
    cr_assert_eq(L.fatal[0], '\0', "%s", L.fatal);
    long secs = (long)(time(NULL) - t0);

    disk_t d = {.admin = net_session(&net, HX_ROLE_ADMIN, "operator")};
    cr_assert(net_wait(compacted_down, &d, 300000),
              "the log came down to what is held: %llu bytes on disk for %llu held", (unsigned long long)d.disk,
              (unsigned long long)d.held);
    cr_assert_eq(d.busy_depth, 0);
    cr_assert_gt(d.moved, 0, "compaction moved the unread messages");
    unsigned long long silent = atomic_load(&L.silent_sent);
    cr_log_info("%lu MB (%llu messages) through in %ld s with %llu unread in 'silent': %llu bytes on disk for %llu "
                "held, %llu messages moved", mb, (unsigned long long)atomic_load(&L.busy_sent), secs, silent,
                (unsigned long long)d.disk, (unsigned long long)d.held, (unsigned long long)d.moved);
    cr_assert_lt(d.disk, (uint64_t)mb << 20 >> 2, "far less than the traffic");
    hx_client_destroy(&d.admin);

    /* a restart, then the unread mailbox is read at last: each message once, intact */
    cr_assert_eq(net_stop(&net, net_pid(&net, "broker"), SIGTERM), 0);
    start_broker();
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, "silent");
    unsigned char *seen = calloc(silent, 1);
    unsigned long long got = 0;
    for (;;) {
        hx_batch_t *b = NULL;
        cr_assert_eq(hx_client_fetch(c, 1000, &b), 0, "%s", hx_client_error(c));
        if (b->count == 0) {
            hx_batch_destroy(&b);
            break;
        }
        uint8_t(*ids)[HX_ID_LEN] = calloc(b->count, HX_ID_LEN);
        for (size_t i = 0; i < b->count; i++) {
            const hx_msg_t *m = &b->msgs[i];
            unsigned long long n = 0;
            cr_assert_eq(m->payload_len, MSG);
            cr_assert_eq(sscanf((const char *)m->payload, "silent-%llu;", &n), 1);
            cr_assert_lt(n, silent);
            cr_assert_eq(seen[n], 0, "silent-%llu came twice", n);
            seen[n] = 1;
            for (size_t k = strlen("silent-;") + 1; k < MSG; k++)
                if (m->payload[k] != 'x' && m->payload[k] != ';' && (m->payload[k] < '0' || m->payload[k] > '9'))
                    cr_assert_fail("silent-%llu: byte %zu changed", n, k);
            memcpy(ids[i], m->id, HX_ID_LEN);
            got++;
        }
        cr_assert_eq(hx_client_ack(c, (const uint8_t(*)[HX_ID_LEN])ids, b->count), 0);
        free(ids);
        hx_batch_destroy(&b);
    }
    cr_assert_eq(got, silent, "every unread message survived its moves and the restart: %llu of %llu", got, silent);
    free(seen);
    hx_client_destroy(&c);
}
