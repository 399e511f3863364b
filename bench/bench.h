/* bench — what the parts of handoff-bench share: options, the processes it starts (the
 * broker and the services, in a temporary directory), a lean DEALER connection that speaks
 * the broker protocol with prepacked envelopes, and latency samples. */
#ifndef HX_BENCH_H
#define HX_BENCH_H
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "envelope.pb-c.h"
#include "hx_pgtest.h"
#include "hx_wire.h"

#define BENCH_PROG "handoff-bench"
#define BENCH_MAX_PROCS 16

/* ---- options (the table is bench_main.c's) ------------------------------------------- */

typedef enum { MODE_SUBMIT, MODE_DELIVER, MODE_PIPELINE, MODE_LATENCY, MODE_RECOVERY, MODE_LATENCY_CURVE, MODE_COUNT } bench_mode_t;

typedef struct {
    bool modes[MODE_COUNT];     /* which modes run (--mode, or all) */
    uint32_t producers;         /* --producers */
    uint32_t window;            /* --window: requests outstanding per producer */
    uint32_t size;              /* --size: payload bytes */
    uint64_t count;             /* --count: messages (or referrals); 0 = the mode's default */
    double duration_s;          /* --duration-s: 0 = by count */
    double rate;                /* --rate: offered per second; 0 = the mode's default */
    uint32_t workers;           /* --workers */
    uint32_t batch;             /* --batch: FETCH max / ACK size */
    bool curve;                 /* --curve */
    bool postgres;              /* --store postgres: intake's record on a PostgreSQL server */
    bool json_only;             /* --json-only */
    bool keep;                  /* --keep: leave the temporary directory */
    bool full;                  /* --full: the big defaults */
    const char *build_dir;      /* --build-dir */
    const char *source_dir;     /* --source-dir (default: the source tree it was built from) */
    const char *tmp_base;       /* --tmp, else TMPDIR, else /tmp */
    uint32_t clinics, therapists;   /* pipeline: the generated network */
    uint64_t seed;
    const char *broker_prefix;  /* --broker-prefix: e.g. "valgrind --tool=callgrind" */
    const char *service_prefix; /* --service-prefix: NAME=CMD, a service run under CMD */
    const char *attach;         /* --attach: a profiler attached for the measured phase */
    uint32_t cluster;           /* --cluster N: submit and latency again on N replicated nodes */
} bench_opts_t;

/* Set by SIGINT/SIGTERM; every loop checks it. */
extern volatile sig_atomic_t bench_stop;

/* ---- processes ----------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    char name[32];
} bench_proc_t;

typedef struct {
    const bench_opts_t *o;
    char dir[512];              /* this run's temporary directory */
    char data[600];             /* the broker's --data */
    char endpoint[128];         /* the broker's, once ready */
    bool probing;               /* finding a cluster's leader: refusals are expected, not printed */
    char bin[1024];             /* the build directory */
    char src[1024];             /* the source directory */
    bench_proc_t procs[BENCH_MAX_PROCS];
    /* CURVE: the broker's key pair and an allow-list of keys made on demand */
    char server_pub[41], server_sec[41];
    char allow_path[600];
    pid_t attached;             /* the --attach process, while it runs */
    bool network;               /* the Handoff network's routing policy (pipeline); otherwise a
                                   policy that lets the bench's "bench" messages go anywhere */
    hx_pgtest_t pg;             /* --store postgres: the run's server (pg.pid while it runs) */
} bench_env_t;

/* A fresh temporary directory and keys (with --curve); registers it for cleanup. */
int bench_env_init(bench_env_t *e, const bench_opts_t *o, const char *mode);
/* Kills every child still running and removes the directory (unless --keep). */
void bench_env_cleanup(bench_env_t *e);
/* Kills every child of every environment (atexit and signal handlers use it). */
void bench_kill_all(void);

/* Starts a program of the build directory (rel, e.g. "broker/handoff-broker") with args
 * (NULL-terminated, after argv[0]); output goes to dir/<name>.log. */
pid_t bench_spawn(bench_env_t *e, const char *name, const char *rel, const char *const args[]);
/* Starts the durable broker on a free port of 127.0.0.1 and waits for its ready file;
 * *ready_ns is how long that took. 0 or -1 (reason on stderr). */
int bench_start_broker(bench_env_t *e, uint64_t *ready_ns);
/* Starts n brokers as one replicated broker (--cluster, on 127.0.0.1 ports of their own, each
 * with its data directory) and waits until one of them serves: e->endpoint is then that
 * leader's, and its process is the one named "broker" (the others "node-N"). 0 or -1. */
int bench_start_cluster(bench_env_t *e, uint32_t n);
/* --attach: starts the command (with {pid} = the broker's pid, {pids} = every child's,
 * comma-separated) for the measured phase; stop sends it SIGINT and waits. No-ops without. */
void bench_attach_start(bench_env_t *e);
void bench_attach_stop(bench_env_t *e);
/* SIGTERM (SIGKILL after 20 s) and reap; returns the wait status. */
int bench_stop_proc(bench_env_t *e, pid_t pid);
pid_t bench_pid(const bench_env_t *e, const char *name);
/* The CPU time (user and system, ns) of every broker process running: the single broker, or
 * every node of a cluster (the leader named "broker", the others "node-N"). */
uint64_t bench_brokers_cpu_ns(const bench_env_t *e);
/* VmRSS of a process in bytes (0 when unknown). */
uint64_t bench_rss(pid_t pid);
/* CPU time (user + system, all threads) a process used so far, in ns; 0 when unknown.
 * Pass getpid() for this process. */
uint64_t bench_cpu_ns(pid_t pid);

/* With --curve: makes (once) a key pair for principal "<kind>:<name>", adds it to the
 * allow-list (the broker rereads it on SIGHUP); writes the secret key to dir/<name>.key
 * when path is not NULL. */
int bench_key_for(bench_env_t *e, const char *kind, const char *name, char pub[41], char sec[41], char *path,
                  size_t pathcap);

/* ---- time and samples -------------------------------------------------------------------- */

uint64_t bench_now_ns(void);
void bench_sleep_ns(uint64_t ns);

typedef struct {
    uint64_t *v;                /* latencies in ns */
    size_t n, cap;
} bench_samples_t;
int bench_samples_add(bench_samples_t *s, uint64_t ns);
int bench_samples_merge(bench_samples_t *into, const bench_samples_t *from);
/* Sorts, then percentile p (0..100) in microseconds. */
void bench_samples_sort(bench_samples_t *s);
double bench_samples_pct_us(const bench_samples_t *s, double p);
void bench_samples_free(bench_samples_t *s);

/* ---- a lean connection ---------------------------------------------------------------------- */

typedef struct {
    void *sock;
    uint64_t last_send_ns;
    char name[HX_NAME_MAX + 1];
} bench_conn_t;

/* The process-wide ZeroMQ context. */
void *bench_zctx(void);
void bench_zctx_term(void);
/* Connects and opens a session: role (HANDOFF__ROLE__ROLE_CLINIC / _WORKER), name, credit
 * (workers). With --curve, the key for the principal is made and allowed first. */
int bench_conn_open(bench_conn_t *c, bench_env_t *e, Handoff__Role role, const char *name, uint32_t credit);
void bench_conn_close(bench_conn_t *c);
int bench_conn_send(bench_conn_t *c, const void *data, size_t len);
int bench_conn_send_env(bench_conn_t *c, const Handoff__Envelope *env, hx_buf_t *scratch);
/* Sends HEARTBEAT when nothing was sent for 500 ms. */
void bench_conn_keepalive(bench_conn_t *c, uint64_t now_ns);
/* Receives one frame into m (initialised by the caller); timeout_ms < 0 blocks, 0 polls.
 * Returns 1 (got one), 0 (nothing in time) or -1. Heartbeats are skipped. */
int bench_conn_recv(bench_conn_t *c, void *zmsg, int timeout_ms);

/* The kind, correlation id (16 bytes or NULL) and error code of a packed Envelope, read
 * without unpacking it. false when the frame is not a well-formed Envelope. */
typedef struct {
    uint32_t kind;
    const uint8_t *corr;
    uint32_t error_code;
    const uint8_t *text;
    size_t text_len;
} bench_reply_t;
bool bench_reply_scan(const uint8_t *p, size_t len, bench_reply_t *out);

/* A SUBMIT of k messages, packed once; each send patches the ids in place. */
typedef struct {
    hx_buf_t buf;
    size_t env_id_off;
    size_t *msg_id_off;
    size_t k;
} bench_prepacked_t;
int bench_prepack_submit(bench_prepacked_t *pp, Handoff__AddressKind kind, const char *to, const char *type,
                         size_t payload_len, size_t k);
/* Message i gets ids[i]; the request id is the first message's id. */
void bench_prepack_set_ids(bench_prepacked_t *pp, const uint8_t (*ids)[HX_ID_LEN]);
void bench_prepack_free(bench_prepacked_t *pp);

/* Bench message ids: "HXBN" | u32 stream (big-endian) | u64 sequence (big-endian). */
void bench_id(uint8_t id[HX_ID_LEN], uint32_t stream, uint64_t seq);
bool bench_id_parse(const uint8_t id[HX_ID_LEN], uint32_t *stream, uint64_t *seq);

/* Fills a mailbox with n messages of `size` bytes (ids stream `stream`, 0..n-1) in batched
 * SUBMITs; 0 or -1 (reason on stderr). */
int bench_fill(bench_env_t *e, const char *mailbox, uint32_t stream, uint64_t n, uint32_t size);

/* Fetches and acks everything from `mailbox` with `workers` sessions, checking the ids of
 * stream `stream` 0..n-1 come back exactly once. */
typedef struct {
    uint64_t delivered, lost, duplicated, foreign;
    double seconds;
    uint64_t leftover;          /* messages a final FETCH still found */
} bench_drain_t;
int bench_drain(bench_env_t *e, const char *mailbox, uint32_t stream, uint64_t n, uint32_t workers, uint32_t batch,
                bench_drain_t *out);

/* The broker's ADMIN "stats" JSON (a new reference), or NULL. */
json_t *bench_broker_stats(bench_env_t *e);

/* ---- modes ------------------------------------------------------------------------------------- */

/* Each runs one mode, prints its table rows and JSON line, and returns 0 when it checked
 * out (no loss, no duplicates), 1 otherwise. */
int bench_mode_submit(const bench_opts_t *o);
int bench_mode_deliver(const bench_opts_t *o);
int bench_mode_latency(const bench_opts_t *o);
int bench_mode_latency_curve(const bench_opts_t *o);
int bench_mode_recovery(const bench_opts_t *o);
int bench_mode_pipeline(const bench_opts_t *o);

/* Output: a JSON object under construction (one line per mode, written by
 * bench_report_end) and the table beside it. */
typedef struct {
    json_t *json;               /* the members in the order reported */
    const bench_opts_t *o;
} bench_report_t;
void bench_report_begin(bench_report_t *r, const bench_opts_t *o, const char *mode);
void bench_report_num(bench_report_t *r, const char *key, double v, const char *unit, const char *label);
void bench_report_int(bench_report_t *r, const char *key, uint64_t v, const char *label);
void bench_report_str(bench_report_t *r, const char *key, const char *v);
void bench_report_end(bench_report_t *r);
/* Human text to stderr unless --json-only. */
void bench_say(const bench_opts_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
