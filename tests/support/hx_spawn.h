/* hx_spawn — start a program, wait for it with a deadline, stop it (a signal, then SIGKILL
 * after a grace): the one process spawner of the integration tests and the benchmark.
 * Every child dies with the thread that started it (PR_SET_PDEATHSIG), so a test or a
 * bench that crashes or fails an assertion leaves nothing running. */
#ifndef HX_SPAWN_H
#define HX_SPAWN_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    const char *const *argv;    /* NULL-terminated; argv[0] a path, or a name looked up in PATH */
    const char *const *env;     /* applied in order in the child: "K=V" sets K, "K" unsets it;
                                   NULL-terminated, or NULL: this process's environment */
    const char *log;            /* stdout and stderr appended to this file (NULL: inherited) */
    const char *err_log;        /* stderr appended to this file instead (NULL: as log) */
    bool out_pipe;              /* stdout a pipe, read from hx_proc_t.out */
    bool err_pipe;              /* stderr a pipe, read from hx_proc_t.err */
    bool pty;                   /* stdin, stdout and stderr a new terminal; its master in .out */
} hx_spawn_opts_t;

typedef struct {
    pid_t pid;
    int out;                    /* stdout's pipe or the pty's master, else -1 */
    int err;                    /* stderr's pipe, else -1 */
} hx_proc_t;

/* Starts o->argv; 0, HX_EINVAL (no argv), HX_ENOMEM, or HX_EIO (a log, a pipe or fork
 * failed; errno says why). The descriptors in *p are the caller's to close (hx_spawn_read closes them). */
int hx_spawn(const hx_spawn_opts_t *o, hx_proc_t *p);

/* Waits up to timeout_ms (0: only a look, < 0: as long as it takes) for pid to end: 1 with
 * its wait status in *status (may be NULL), 0 while it runs, HX_EIO when it is no child. */
int hx_spawn_wait(pid_t pid, int timeout_ms, int *status);

/* Sends sig (0: none, it was sent already), gives pid grace_ms (< 0: forever) to end, then
 * SIGKILL, and reaps it: 0 when it ended within the grace, 1 when it had to be killed,
 * HX_EIO when it is no child. *status (may be NULL) is the wait status either way. */
int hx_spawn_stop(pid_t pid, int sig, int grace_ms, int *status);

/* Reads p->out and p->err (those >= 0) until both close or timeout_ms passes (< 0: no
 * limit), keeping what fits in out and err (NUL-terminated; either may be NULL: discarded),
 * and closes them. 0 or HX_ETIMEDOUT. */
int hx_spawn_read(hx_proc_t *p, char *out, size_t out_cap, char *err, size_t err_cap, int timeout_ms);

/* Runs o to its end (hx_spawn, hx_spawn_read without a limit, the wait); its output in out
 * and err as hx_spawn_read keeps it, and *code its exit code (-1 when a signal ended it).
 * 0, or hx_spawn's error when it could not start. */
int hx_spawn_run(const hx_spawn_opts_t *o, char *out, size_t out_cap, char *err, size_t err_cap, int *code);

/* The exit code in a wait status, or -1 when a signal ended the process. */
int hx_spawn_exit_code(int status);

#endif
