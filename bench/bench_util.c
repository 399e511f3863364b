/* bench_util — the processes handoff-bench starts and always stops, its temporary
 * directories, CURVE keys, clocks, latency samples and the report (table + JSON line). */
#define _GNU_SOURCE
#include "bench.h"
#include "hx_curve.h"
#include "hx_spawn.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_GRACE_MS 20000                    /* after SIGTERM; then a process is stuck */

volatile sig_atomic_t bench_stop;

/* Every live environment, so a signal or an early exit can stop their children. Only the
 * main thread registers and unregisters; the handler reads pids it may find stale (kill of
 * a reaped pid is harmless here: the slots are cleared after waitpid). */
#define MAX_ENVS 4
static bench_env_t *volatile envs[MAX_ENVS];

void bench_kill_all(void)
{
    for (int i = 0; i < MAX_ENVS; i++) {
        bench_env_t *e = envs[i];
        if (!e)
            continue;
        for (int k = 0; k < BENCH_MAX_PROCS; k++)
            if (e->procs[k].pid > 0)
                kill(e->procs[k].pid, SIGKILL);
    }
}

/* ---- time ------------------------------------------------------------------------------- */

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !bench_stop)
        ;
}

/* ---- directories ------------------------------------------------------------------------- */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* The directory holding this executable. */
static void self_dir(char *out, size_t cap)
{
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, cap, ".");
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, cap, "%s", exe);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int bench_env_init(bench_env_t *e, const bench_opts_t *o, const char *mode)
{
    memset(e, 0, sizeof *e);
    e->o = o;
    e->network = strcmp(mode, "pipeline") == 0;
    /* the build directory: --build-dir, else the parent of bench/ where this binary lives */
    if (o->build_dir) {
        snprintf(e->bin, sizeof e->bin, "%s", o->build_dir);
    } else {
        char here[1024];
        self_dir(here, sizeof here);
        char *slash = strrchr(here, '/');       /* <build>/bench/handoff-bench: <build> */
        if (slash && slash != here)
            *slash = '\0';
        snprintf(e->bin, sizeof e->bin, "%.1000s", here);
    }
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/broker/handoff-broker", e->bin);
    if (!is_file(probe)) {
        fprintf(stderr, "%s: no broker at %s: build first, or give --build-dir DIR (the CMake build directory)\n",
                BENCH_PROG, probe);
        return -1;
    }
    snprintf(e->src, sizeof e->src, "%s", o->source_dir ? o->source_dir : HX_BENCH_SOURCE_DIR);
    const char *base = o->tmp_base ? o->tmp_base : "/tmp";     /* the option table: --tmp, TMPDIR, /tmp */
    snprintf(e->dir, sizeof e->dir, "%s/handoff-bench-%s-XXXXXX", base, mode);
    if (!mkdtemp(e->dir)) {
        fprintf(stderr, "%s: cannot make a temporary directory under %s: %s\n", BENCH_PROG, base, strerror(errno));
        return -1;
    }
    snprintf(e->data, sizeof e->data, "%s/data", e->dir);
    for (int i = 0; i < MAX_ENVS; i++)
        if (!envs[i]) {
            envs[i] = e;
            break;
        }
    if (o->curve) {
        char err[600];
        snprintf(e->allow_path, sizeof e->allow_path, "%s/allow.txt", e->dir);
        char path[700];
        snprintf(path, sizeof path, "%s/broker.key", e->dir);
        if (hx_key_generate(e->server_pub, e->server_sec) != 0 ||
            hx_key_file_write(path, e->server_sec, 0600, err, sizeof err) != 0) {
            fprintf(stderr, "%s: cannot make the broker's CURVE key: %s\n", BENCH_PROG, err);
            return -1;
        }
        FILE *f = fopen(e->allow_path, "w");
        if (!f || fprintf(f, "# handoff-bench keys\n") < 0 || fclose(f) != 0) {
            fprintf(stderr, "%s: cannot write %s\n", BENCH_PROG, e->allow_path);
            return -1;
        }
    }
    return 0;
}

static int slot_of(const bench_env_t *e, pid_t pid)
{
    for (int k = 0; k < BENCH_MAX_PROCS; k++)
        if (pid > 0 && e->procs[k].pid == pid)
            return k;
    return -1;
}

/* sig (0: none, sent already), BENCH_GRACE_MS to end, then SIGKILL; the wait status. */
static int stop_slot(bench_env_t *e, int k, int sig)
{
    int status = -1;
    hx_spawn_stop(e->procs[k].pid, sig, BENCH_GRACE_MS, &status);
    e->procs[k].pid = 0;
    return status;
}

int bench_stop_proc(bench_env_t *e, pid_t pid)
{
    int k = slot_of(e, pid);
    return k < 0 ? -1 : stop_slot(e, k, SIGTERM);
}

void bench_env_cleanup(bench_env_t *e)
{
    bench_attach_stop(e);
    for (int k = BENCH_MAX_PROCS; k-- > 0;)        /* services first, the broker last */
        if (e->procs[k].pid > 0)
            kill(e->procs[k].pid, SIGTERM);
    for (int k = BENCH_MAX_PROCS; k-- > 0;)
        if (e->procs[k].pid > 0)
            stop_slot(e, k, 0);
    for (int i = 0; i < MAX_ENVS; i++)
        if (envs[i] == e)
            envs[i] = NULL;
    hx_pgtest_destroy(&e->pg);                      /* --store postgres: its server and cluster */
    if (e->dir[0]) {
        if (e->o->keep)
            fprintf(stderr, "%s: kept %s\n", BENCH_PROG, e->dir);
        else
            rm_rf(e->dir);
    }
}

/* Splits a command line on spaces into argv (at most cap - 1 words, in buf). */
static size_t split_words(char *buf, const char **argv, size_t cap)
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && n < cap - 1; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    return n;
}

/* Starts argv with stdout and stderr appended to log; the child dies with the bench. */
static pid_t spawn_logged(const char **argv, const char *log)
{
    hx_proc_t p;
    return hx_spawn(&(hx_spawn_opts_t){.argv = argv, .log = log}, &p) == 0 ? p.pid : -1;
}

pid_t bench_spawn(bench_env_t *e, const char *name, const char *rel, const char *const args[])
{
    int k;
    for (k = 0; k < BENCH_MAX_PROCS && e->procs[k].pid > 0; k++)
        ;
    if (k == BENCH_MAX_PROCS)
        return -1;
    char path[1200], log[700];
    snprintf(path, sizeof path, "%s/%s", e->bin, rel);
    snprintf(log, sizeof log, "%s/%s.log", e->dir, name);
    const char *argv[96];
    size_t n = 0;
    char prefix[1024] = "";
    const char *sp = e->o->service_prefix, *eq = sp ? strchr(sp, '=') : NULL;
    if (e->o->broker_prefix && strcmp(name, "broker") == 0) {   /* a profiler runs the broker */
        snprintf(prefix, sizeof prefix, "%s", e->o->broker_prefix);
        n = split_words(prefix, argv, 32);
    } else if (eq && strlen(name) == (size_t)(eq - sp) && !strncmp(sp, name, strlen(name))) {
        snprintf(prefix, sizeof prefix, "%s", eq + 1);
        n = split_words(prefix, argv, 32);
    }
    argv[n++] = path;
    for (size_t i = 0; args && args[i] && n < 95; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = spawn_logged(argv, log);
    if (pid < 0)
        return -1;
    e->procs[k].pid = pid;
    snprintf(e->procs[k].name, sizeof e->procs[k].name, "%s", name);
    return pid;
}

void bench_attach_start(bench_env_t *e)
{
    if (!e->o->attach)
        return;
    char pids[512] = "", broker[32] = "";
    for (int k = 0; k < BENCH_MAX_PROCS; k++) {
        if (e->procs[k].pid <= 0)
            continue;
        size_t len = strlen(pids);
        snprintf(pids + len, sizeof pids - len, "%s%d", len ? "," : "", (int)e->procs[k].pid);
    }
    snprintf(broker, sizeof broker, "%d", (int)bench_pid(e, "broker"));
    char cmd[2048] = "";
    for (const char *p = e->o->attach; *p && strlen(cmd) < sizeof cmd - 600;) {
        size_t len = strlen(cmd);
        if (strncmp(p, "{pids}", 6) == 0) {
            snprintf(cmd + len, sizeof cmd - len, "%s", pids);
            p += 6;
        } else if (strncmp(p, "{pid}", 5) == 0) {
            snprintf(cmd + len, sizeof cmd - len, "%s", broker);
            p += 5;
        } else {
            cmd[len] = *p++;
            cmd[len + 1] = '\0';
        }
    }
    const char *argv[64];
    split_words(cmd, argv, 64);
    char log[700];
    snprintf(log, sizeof log, "%s/attach.log", e->dir);
    pid_t pid = spawn_logged(argv, log);
    e->attached = pid > 0 ? pid : 0;
    bench_sleep_ns(700 * 1000000u);             /* let it attach */
}

void bench_attach_stop(bench_env_t *e)
{
    if (e->attached <= 0)
        return;
    hx_spawn_stop(e->attached, SIGINT, -1, NULL);      /* a profiler may take its time to write */
    e->attached = 0;
}

pid_t bench_pid(const bench_env_t *e, const char *name)
{
    for (int k = 0; k < BENCH_MAX_PROCS; k++)
        if (e->procs[k].pid > 0 && strcmp(e->procs[k].name, name) == 0)
            return e->procs[k].pid;
    return 0;
}

int bench_start_broker(bench_env_t *e, uint64_t *ready_ns)
{
    char ready[700], key[700];
    snprintf(ready, sizeof ready, "%s/broker.endpoint", e->dir);
    snprintf(key, sizeof key, "%s/broker.key", e->dir);
    unlink(ready);
    /* the first start picks a free port; a restart keeps it so the figures stay comparable */
    char bind[160];
    if (e->endpoint[0])
        snprintf(bind, sizeof bind, "%s", e->endpoint);
    else
        snprintf(bind, sizeof bind, "tcp://127.0.0.1:*");
    const char *args[32] = {"--bind", bind, "--ready-file", ready, "--data", e->data,
                            /* queues as deep as the run needs: the bench measures speed, not bounds */
                            "--max-queue", "100000000", "--max-queue-bytes", "4000000000"};
    size_t n = 10;
    char policy[700];
    args[n++] = "--sender-share";               /* one producer session is all the traffic */
    args[n++] = "100";
    if (!e->network) {                          /* the bench's own type, from anyone to anywhere */
        snprintf(policy, sizeof policy, "%s/policy.json", e->dir);
        json_t *rules = json_pack("{s:[{s:s, s:s, s:[s]}]}", "rules", "from", "*", "to", "*", "types", "bench");
        bool ok = rules && json_dump_file(rules, policy, 0) == 0;
        json_decref(rules);
        if (!ok) {
            fprintf(stderr, "%s: cannot write %s\n", BENCH_PROG, policy);
            return -1;
        }
        args[n++] = "--policy";
        args[n++] = policy;
    }
    if (e->o->curve) {
        args[n++] = "--curve-secret";
        args[n++] = key;
        args[n++] = "--allow";
        args[n++] = e->allow_path;
    } else {
        args[n++] = "--plain-tcp-for-tests";
    }
    args[n] = NULL;
    uint64_t t0 = bench_now_ns();
    pid_t pid = bench_spawn(e, "broker", "broker/handoff-broker", args);
    if (pid < 0) {
        fprintf(stderr, "%s: cannot start the broker\n", BENCH_PROG);
        return -1;
    }
    for (;;) {
        if (access(ready, R_OK) == 0)
            break;
        int status;
        if (hx_spawn_wait(pid, 0, &status) == 1) {
            int k = slot_of(e, pid);
            if (k >= 0)
                e->procs[k].pid = 0;
            fprintf(stderr, "%s: the broker exited at start (status %d); see %s/broker.log\n", BENCH_PROG, status,
                    e->dir);
            return -1;
        }
        if (bench_now_ns() - t0 > 120ull * 1000000000u || bench_stop) {
            fprintf(stderr, "%s: the broker was not ready within 120 s; see %s/broker.log\n", BENCH_PROG, e->dir);
            return -1;
        }
        bench_sleep_ns(200000);                 /* 0.2 ms: the ready time is measured with it */
    }
    if (ready_ns)
        *ready_ns = bench_now_ns() - t0;
    FILE *f = fopen(ready, "r");
    if (!f || !fgets(e->endpoint, sizeof e->endpoint, f)) {
        if (f)
            fclose(f);
        fprintf(stderr, "%s: cannot read %s\n", BENCH_PROG, ready);
        return -1;
    }
    fclose(f);
    e->endpoint[strcspn(e->endpoint, "\r\n")] = '\0';
    return 0;
}

/* A free TCP port of 127.0.0.1, and the socket holding it (*fd): the caller closes it once it
 * has chosen all its ports, so that no two of them are the same. -1 when none. */
static int free_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = *fd >= 0 && bind(*fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                       getsockname(*fd, (struct sockaddr *)&a, &len) == 0
                   ? ntohs(a.sin_port)
                   : -1;
    if (port < 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return port;
}

int bench_start_cluster(bench_env_t *e, uint32_t n)
{
    enum { MAX_NODES = 7 };
    if (n < 1 || n > MAX_NODES || e->o->curve) {
        fprintf(stderr, "%s: --cluster: 1 to %d nodes, without --curve\n", BENCH_PROG, MAX_NODES);
        return -1;
    }
    char spec[2048], endpoints[MAX_NODES][64], ready[MAX_NODES][700], data[MAX_NODES][700], id[MAX_NODES][8],
        policy[700];
    size_t k = 0;
    int held[2 * MAX_NODES];
    size_t n_held = 0;
    bool ports = true;
    for (uint32_t i = 0; i < n; i++) {
        int port = free_port(&held[n_held]);
        n_held += port >= 0;
        int raft = port >= 0 ? free_port(&held[n_held]) : -1;
        n_held += raft >= 0;
        if (port < 0 || raft < 0) {
            ports = false;
            break;
        }
        snprintf(endpoints[i], sizeof endpoints[i], "tcp://127.0.0.1:%d", port);
        snprintf(ready[i], sizeof ready[i], "%s/node-%u.ready", e->dir, i + 1);
        snprintf(data[i], sizeof data[i], "%s/node-%u", e->dir, i + 1);
        snprintf(id[i], sizeof id[i], "%u", i + 1);
        k += (size_t)snprintf(spec + k, sizeof spec - k, "%s%u=127.0.0.1:%d=%s", i ? "," : "", i + 1, raft,
                              endpoints[i]);
    }
    while (n_held)                          /* all chosen: the nodes bind them */
        close(held[--n_held]);
    if (!ports) {
        fprintf(stderr, "%s: no free TCP port on 127.0.0.1: %s\n", BENCH_PROG, strerror(errno));
        return -1;
    }
    snprintf(policy, sizeof policy, "%s/policy.json", e->dir);
    json_t *rules = json_pack("{s:[{s:s, s:s, s:[s]}]}", "rules", "from", "*", "to", "*", "types", "bench");
    bool ok = rules && json_dump_file(rules, policy, 0) == 0;
    json_decref(rules);
    if (!ok)
        return -1;
    pid_t pids[MAX_NODES];
    for (uint32_t i = 0; i < n; i++) {
        unlink(ready[i]);
        const char *args[] = {"--bind", endpoints[i], "--ready-file", ready[i], "--data", data[i], "--cluster", spec,
                              "--node-id", id[i], "--max-queue", "100000000", "--max-queue-bytes", "4000000000",
                              "--sender-share", "100", "--policy", policy, "--plain-tcp-for-tests", NULL};
        char name[16];
        snprintf(name, sizeof name, "node-%u", i + 1);
        if ((pids[i] = bench_spawn(e, name, "broker/handoff-broker", args)) < 0)
            return -1;
    }
    /* the leader: the node whose HELLO is welcomed (the others answer ERR_NOT_LEADER) */
    uint64_t t0 = bench_now_ns();
    while (!bench_stop && bench_now_ns() - t0 < 60ull * 1000000000u) {
        for (uint32_t i = 0; i < n; i++) {
            if (access(ready[i], R_OK) != 0)
                continue;
            snprintf(e->endpoint, sizeof e->endpoint, "%.63s", endpoints[i]);
            bench_conn_t c;
            e->probing = true;
            int probe = bench_conn_open(&c, e, HANDOFF__ROLE__ROLE_ADMIN, "bench-probe", 0);
            e->probing = false;
            if (probe == 0) {
                bench_conn_close(&c);
                int slot = slot_of(e, pids[i]);
                if (slot >= 0)
                    snprintf(e->procs[slot].name, sizeof e->procs[slot].name, "broker");
                return 0;
            }
        }
        bench_sleep_ns(100000000);              /* an election takes a second or two */
    }
    e->endpoint[0] = '\0';
    fprintf(stderr, "%s: no node of the cluster served within 60 s; see %s/node-*.log\n", BENCH_PROG, e->dir);
    return -1;
}

uint64_t bench_brokers_cpu_ns(const bench_env_t *e)
{
    uint64_t ns = 0;
    for (int k = 0; k < BENCH_MAX_PROCS; k++)
        if (e->procs[k].pid > 0 && (!strcmp(e->procs[k].name, "broker") || !strncmp(e->procs[k].name, "node-", 5)))
            ns += bench_cpu_ns(e->procs[k].pid);
    return ns;
}

uint64_t bench_rss(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

uint64_t bench_cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');          /* after "pid (comm)" */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return (ut + st) * 1000000000ull / (uint64_t)(hz > 0 ? hz : 100);
}

/* ---- CURVE keys ---------------------------------------------------------------------------- */

typedef struct {
    char principal[HX_PRINCIPAL_MAX];
    char pub[41], sec[41];
} key_t_;

static key_t_ *keys;
static size_t n_keys, cap_keys;
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;

int bench_key_for(bench_env_t *e, const char *kind, const char *name, char pub[41], char sec[41], char *path,
                  size_t pathcap)
{
    char principal[HX_PRINCIPAL_MAX];
    snprintf(principal, sizeof principal, "%s:%s", kind, name);
    pthread_mutex_lock(&keys_lock);
    key_t_ *k = NULL;
    for (size_t i = 0; i < n_keys; i++)
        if (strcmp(keys[i].principal, principal) == 0)
            k = &keys[i];
    int rc = 0;
    if (!k) {
        if (n_keys == cap_keys) {
            size_t nc = cap_keys ? cap_keys * 2 : 64;
            key_t_ *nk = realloc(keys, nc * sizeof *nk);
            if (!nk) {
                pthread_mutex_unlock(&keys_lock);
                return -1;
            }
            keys = nk;
            cap_keys = nc;
        }
        k = &keys[n_keys++];
        snprintf(k->principal, sizeof k->principal, "%s", principal);
        FILE *f = NULL;
        if (hx_key_generate(k->pub, k->sec) != 0 || !(f = fopen(e->allow_path, "a")) ||
            fprintf(f, "%s %s %s\n", k->pub, kind, name) < 0 || fclose(f) != 0) {
            n_keys--;
            rc = -1;
        }
        pid_t broker = bench_pid(e, "broker");
        if (rc == 0 && broker > 0) {            /* a running broker rereads its allow-list */
            kill(broker, SIGHUP);
            bench_sleep_ns(50 * 1000000u);
        }
    }
    if (rc == 0) {
        memcpy(pub, k->pub, 41);
        memcpy(sec, k->sec, 41);
    }
    pthread_mutex_unlock(&keys_lock);
    if (rc == 0 && path) {
        char err[600];
        snprintf(path, pathcap, "%s/%s.key", e->dir, name);
        if (access(path, F_OK) != 0 && hx_key_file_write(path, sec, 0600, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", BENCH_PROG, err);
            rc = -1;
        }
    }
    if (rc)
        fprintf(stderr, "%s: cannot make a CURVE key for %s\n", BENCH_PROG, principal);
    return rc;
}

/* ---- samples ---------------------------------------------------------------------------------- */

int bench_samples_add(bench_samples_t *s, uint64_t ns)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4096;
        uint64_t *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = ns;
    return 0;
}

int bench_samples_merge(bench_samples_t *into, const bench_samples_t *from)
{
    for (size_t i = 0; i < from->n; i++)
        if (bench_samples_add(into, from->v[i]))
            return -1;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void bench_samples_sort(bench_samples_t *s)
{
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, cmp_u64);
}

double bench_samples_pct_us(const bench_samples_t *s, double p)
{
    if (!s->n)
        return 0;
    /* nearest rank */
    size_t rank = (size_t)ceil(p / 100.0 * (double)s->n);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return (double)s->v[rank - 1] / 1000.0;
}

void bench_samples_free(bench_samples_t *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- report ------------------------------------------------------------------------------------- */

void bench_say(const bench_opts_t *o, const char *fmt, ...)
{
    if (o->json_only)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

/* The JSON line is an object built with jansson, members in the order reported, dumped
 * compact. A number that is whole, or 100 and more, is an integer; any other is rounded to
 * three decimals, which JSON_REAL_PRECISION(5) prints exactly (below 100 such a value has
 * at most two digits before the point and three after). */
#define REPORT_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(5))

static void report_put(bench_report_t *r, const char *key, json_t *v)
{
    json_object_set_new(r->json, key, v);       /* a NULL object or value: left out */
}

void bench_report_begin(bench_report_t *r, const bench_opts_t *o, const char *mode)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->json = json_object();
    report_put(r, "mode", json_string(mode));
    if (!o->json_only)
        printf("\n== %s%s\n", mode, o->curve ? " (CURVE)" : "");
}

void bench_report_num(bench_report_t *r, const char *key, double v, const char *unit, const char *label)
{
    if (!isfinite(v))
        v = 0;
    if ((v == floor(v) || fabs(v) >= 100) && fabs(v) < 9e18)
        report_put(r, key, json_integer((json_int_t)nearbyint(v)));
    else
        report_put(r, key, json_real(round(v * 1000) / 1000));
    if (!r->o->json_only && label)
        printf("  %-34s %14.*f %s\n", label, v >= 100 || v == floor(v) ? 0 : 2, v, unit ? unit : "");
}

void bench_report_int(bench_report_t *r, const char *key, uint64_t v, const char *label)
{
    report_put(r, key, json_integer((json_int_t)v));
    if (!r->o->json_only && label)
        printf("  %-34s %14llu\n", label, (unsigned long long)v);
}

void bench_report_str(bench_report_t *r, const char *key, const char *v)
{
    report_put(r, key, json_string(v));
}

void bench_report_end(bench_report_t *r)
{
    char *line = r->json ? json_dumps(r->json, REPORT_DUMP_FLAGS) : NULL;
    if (line)
        printf("%s\n", line);
    else
        fprintf(stderr, "%s: out of memory for the JSON line\n", BENCH_PROG);
    free(line);
    json_decref(r->json);
    r->json = NULL;
    fflush(stdout);
}
