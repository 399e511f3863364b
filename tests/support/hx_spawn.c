/* hx_spawn — the process spawner of the integration tests and the benchmark. */
#define _GNU_SOURCE
#include "hx_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utmp.h>

#include "hx_wire.h"

extern char **environ;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* This environment with the changes of env applied ("K=V" sets, "K" unsets), built before
 * the fork so that the child only calls what is safe after a fork in a threaded program.
 * The strings are borrowed from environ and env; free the array only. */
static char **environment(const char *const *env)
{
    size_t n = 0, extra = 0;
    while (environ[n])
        n++;
    while (env[extra])
        extra++;
    char **out = calloc(n + extra + 1, sizeof *out);
    if (!out)
        return NULL;
    memcpy(out, environ, n * sizeof *out);
    for (size_t i = 0; i < extra; i++) {
        const char *eq = strchr(env[i], '=');
        size_t key = eq ? (size_t)(eq - env[i]) : strlen(env[i]);
        size_t k = 0;
        for (size_t j = 0; j < n; j++)          /* drop K from what is there */
            if (!(strncmp(out[j], env[i], key) == 0 && out[j][key] == '='))
                out[k++] = out[j];
        n = k;
        if (eq)
            out[n++] = (char *)env[i];
    }
    out[n] = NULL;
    return out;
}

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

int hx_spawn(const hx_spawn_opts_t *o, hx_proc_t *p)
{
    p->pid = -1;
    p->out = p->err = -1;
    if (!o->argv || !o->argv[0])
        return HX_EINVAL;
    int rc = HX_EIO;
    int log = -1, err_log = -1, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, tty = -1;
    char **envp = NULL;
    if (o->env && !(envp = environment(o->env))) {
        rc = HX_ENOMEM;
        goto fail;
    }
    if (o->log && (log = open_log(o->log)) < 0)
        goto fail;
    if (o->err_log && (err_log = open_log(o->err_log)) < 0)
        goto fail;
    if (o->pty) {
        if (openpty(&p->out, &tty, NULL, NULL, NULL) != 0)
            goto fail;
        fcntl(p->out, F_SETFD, FD_CLOEXEC);
        fcntl(tty, F_SETFD, FD_CLOEXEC);
    } else if (o->out_pipe) {
        if (pipe2(out_pipe, O_CLOEXEC) != 0)
            goto fail;
    }
    if (o->err_pipe && pipe2(err_pipe, O_CLOEXEC) != 0)
        goto fail;
    int out_fd = out_pipe[1] >= 0 ? out_pipe[1] : log;
    int err_fd = err_pipe[1] >= 0 ? err_pipe[1] : err_log >= 0 ? err_log : log;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0) {                             /* only what is safe after fork from here on */
        prctl(PR_SET_PDEATHSIG, SIGKILL);       /* never outlive the test or the bench */
        if (getppid() != parent)
            _exit(127);
        if (tty >= 0 && login_tty(tty) != 0)
            _exit(127);
        if (out_fd >= 0)
            dup2(out_fd, 1);
        if (err_fd >= 0)
            dup2(err_fd, 2);
        if (envp)
            execvpe(o->argv[0], (char *const *)o->argv, envp);
        else
            execvp(o->argv[0], (char *const *)o->argv);
        _exit(127);
    }
    p->pid = pid;
    p->err = err_pipe[0];
    if (out_pipe[0] >= 0)
        p->out = out_pipe[0];
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[1]);
    close_fd(&tty);
    close_fd(&log);
    close_fd(&err_log);
    free(envp);
    return 0;
fail:
    close_fd(&out_pipe[0]);
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[0]);
    close_fd(&err_pipe[1]);
    close_fd(&tty);
    close_fd(&p->out);
    close_fd(&log);
    close_fd(&err_log);
    free(envp);
    return rc;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

int hx_spawn_wait(pid_t pid, int timeout_ms, int *status)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long nap_us = 1000;                         /* 1 ms, doubling up to 10 ms */
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == pid) {
            if (status)
                *status = st;
            return 1;
        }
        if (r < 0 && errno != EINTR)
            return HX_EIO;
        if (r == 0) {
            long left = timeout_ms - elapsed_ms(&start);
            if (left <= 0)
                return 0;
            long us = nap_us < left * 1000 ? nap_us : left * 1000;
            struct timespec nap = {0, us * 1000};
            nanosleep(&nap, NULL);
            if (nap_us < 10000)
                nap_us *= 2;
        }
    }
}

int hx_spawn_stop(pid_t pid, int sig, int grace_ms, int *status)
{
    if (pid <= 0)
        return HX_EIO;
    if (sig)
        kill(pid, sig);
    int rc = hx_spawn_wait(pid, grace_ms, status);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    kill(pid, SIGKILL);                         /* stuck */
    rc = hx_spawn_wait(pid, -1, status);
    return rc == 1 ? 1 : rc;
}

int hx_spawn_read(hx_proc_t *p, char *out, size_t out_cap, char *err, size_t err_cap, int timeout_ms)
{
    struct {
        int *fd;
        char *buf;
        size_t cap, len;
    } s[2] = {{&p->out, out, out ? out_cap : 0, 0}, {&p->err, err, err ? err_cap : 0, 0}};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int rc = 0;
    while (*s[0].fd >= 0 || *s[1].fd >= 0) {
        struct pollfd pf[2];
        int map[2], n = 0;
        for (int i = 0; i < 2; i++)
            if (*s[i].fd >= 0) {
                pf[n] = (struct pollfd){*s[i].fd, POLLIN, 0};
                map[n++] = i;
            }
        long left = timeout_ms < 0 ? -1 : timeout_ms - elapsed_ms(&start);
        if (timeout_ms >= 0 && left <= 0) {
            rc = HX_ETIMEDOUT;
            break;
        }
        int ready = poll(pf, (nfds_t)n, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            rc = HX_EIO;
            break;
        }
        for (int k = 0; k < n; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int i = map[k];
            char discard[4096];
            bool room = s[i].len + 1 < s[i].cap;
            ssize_t r = room ? read(*s[i].fd, s[i].buf + s[i].len, s[i].cap - 1 - s[i].len)
                             : read(*s[i].fd, discard, sizeof discard);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r <= 0)                         /* the end (a pty's master reads EIO then) */
                close_fd(s[i].fd);
            else if (room)
                s[i].len += (size_t)r;
        }
    }
    close_fd(&p->out);
    close_fd(&p->err);
    for (int i = 0; i < 2; i++)
        if (s[i].cap)
            s[i].buf[s[i].len] = '\0';
    return rc;
}

int hx_spawn_exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int hx_spawn_run(const hx_spawn_opts_t *o, char *out, size_t out_cap, char *err, size_t err_cap, int *code)
{
    hx_proc_t p;
    int rc = hx_spawn(o, &p);
    if (rc)
        return rc;
    hx_spawn_read(&p, out, out_cap, err, err_cap, -1);
    int status = 0;
    rc = hx_spawn_wait(p.pid, -1, &status);
    if (rc < 0)
        return rc;
    *code = hx_spawn_exit_code(status);
    return 0;
}
