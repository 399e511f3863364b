/* harness — start the real programs on 127.0.0.1 for integration tests, and always stop
 * them: the suites' fixtures call net_stop_all, and each child (started by hx_spawn) gets
 * PR_SET_PDEATHSIG, so even a crashed test leaves nothing behind. */
#ifndef HX_HARNESS_H
#define HX_HARNESS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "hx_client.h"

#include <jansson.h>

#define NET_MAX_PROCS 32

typedef struct {
    pid_t pid;
    char name[48];
} net_proc_t;

typedef struct {
    char dir[256];              /* a fresh temporary directory for this test */
    char endpoint[128];         /* the broker's, once started */
    net_proc_t procs[NET_MAX_PROCS];
    size_t n;
} net_t;

/* Path of a built program, e.g. bin("broker/handoff-broker"). */
const char *net_bin(const char *rel);
/* The store a service of this test's network keeps file in: n->dir/file on SQLite; on
 * PostgreSQL (HX_TEST_STORE=postgres) the URL of the network's own database, which intake and
 * scheduling share (each in a schema of its own). */
const char *net_store(net_t *n, const char *file, char *out, size_t cap);
/* Path of a source file, e.g. src("deploy/sample/directory.json"). */
const char *net_src(const char *rel);

/* A plain (no CURVE) session with the broker of n as a clinic or an admin named name;
 * fails the test when it cannot connect. */
hx_client_t *net_session(const net_t *n, hx_role_t role, const char *name);

void net_init(net_t *n);
/* Starts a program (argv[0] is a path from net_bin); stdout+stderr go to dir/<name>.log
 * (appended to, so a restarted program keeps one log). */
pid_t net_spawn(net_t *n, const char *name, const char *const argv[]);
/* Starts the broker on a free port of 127.0.0.1 and waits until it listens. Extra
 * arguments (NULL-terminated) are appended. */
void net_start_broker(net_t *n, const char *const extra[]);
/* The same with tests/integration/policy-any.json as its routing policy: any session may
 * send any type anywhere (for tests of queues, durability and faults with made-up types;
 * the network's own rules are tested with the built-in policy). */
void net_start_broker_open(net_t *n, const char *const extra[]);
/* Starts intake, triage and scheduling (scheduling from `start`, e.g. 2026-11-23T08:00). */
void net_start_services(net_t *n, const char *start);
/* Starts intake (its database in dir) and triage only, for tests that start scheduling
 * themselves. */
void net_start_front(net_t *n);
/* Starts one more handoff-scheduling worker, logging to dir/<name>.log, on the sample
 * directory from `start` with the SQLite file `db` (NULL: dir/scheduling.db, the file
 * net_start_services uses, so workers share it). Extra arguments (NULL-terminated, may be
 * NULL) are appended, e.g. {"--credit", "1", NULL}. */
pid_t net_start_scheduling(net_t *n, const char *name, const char *start, const char *db, const char *const extra[]);
/* A TCP port on 127.0.0.1 that was free a moment ago and that this process has not been given
 * before. */
int net_free_port(void);
/* SIGKILL one process and reap it. */
void net_kill9(net_t *n, pid_t pid);
/* Sends sig (0: none) to one process and reaps it (SIGKILL after 10 s); returns its wait
 * status, or -1 when it had to be killed or is not running. Its slot is reused by the next
 * net_spawn. */
int net_stop(net_t *n, pid_t pid, int sig);
/* The pid of the running process started under `name` (e.g. "broker"), or 0. */
pid_t net_pid(const net_t *n, const char *name);
/* SIGTERM everything, wait (then SIGKILL), and remove the directory. Returns how many
 * processes exited with a non-zero status or a signal other than the SIGTERM. */
int net_stop_all(net_t *n);
/* Runs the clinic CLI for `clinic` with the given arguments (NULL-terminated); captures
 * stdout into out (NUL-terminated) and returns the exit status (or -1). */
int net_cli(net_t *n, const char *clinic, char *out, size_t cap, const char *const args[]);
/* Runs `handoff --json --timeout-ms 10000 ARGS...` for `clinic` (the arguments after out,
 * NULL-terminated, at most 20); returns the exit status, with the output parsed as JSON into
 * *out (NULL when it is not JSON; the caller json_decref's it). */
int net_cli_json(net_t *n, const char *clinic, json_t **out, ...);
/* A string member of a JSON object, "" when it is missing or not a string. */
const char *net_jstr(json_t *o, const char *key);
/* In a clinic's `handoff --json inbox` (groups of rows), that clinic's own received row of
 * referral rid and discipline d as "group/status" ("new/ready"); "" when there is none. */
void net_inbox_row(json_t *inbox, const char *rid, const char *d, char *out, size_t cap);
/* Polls cond every 20 ms until it is true or timeout_ms passes. */
bool net_wait(bool (*cond)(void *arg), void *arg, int timeout_ms);
/* Sleeps ms (a pause between polls or retries, never a wait for a condition: net_wait). */
void net_nap_ms(long ms);
/* Monotonic milliseconds. */
int64_t net_mono_ms(void);
/* True when the file exists. */
bool net_file_exists(const char *path);
/* For a suite's .fini: bad processes (net_stop_all's count) did not stop cleanly (an exit
 * status other than 0, a sanitizer's report at exit among them). Criterion does not fail a
 * test for an expectation that fails in .fini, so this says so and aborts the test's process:
 * the run fails. */
void net_fini_verdict(int bad, const char *dir);
/* Whether any file under dir (and its subfolders) holds the n bytes of needle. */
bool net_dir_holds(const char *dir, const void *needle, size_t n);

#endif
