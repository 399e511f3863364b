/* harness — process control for integration tests. */
#define _GNU_SOURCE
#include "hx_pgtest_hooks.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hx_spawn.h"

#define NET_GRACE_MS 10000                      /* after SIGTERM; then a process is stuck */

static const char *env_path(const char *var, const char *rel)
{
    static char buf[8][1024];
    static int k;
    const char *base = getenv(var);
    cr_assert_not_null(base, "%s is not set (run the tests through ctest)", var);
    char *out = buf[k++ % 8];
    snprintf(out, sizeof buf[0], "%s/%s", base, rel);
    return out;
}

const char *net_bin(const char *rel)
{
    return env_path("HX_BUILD_DIR", rel);
}

const char *net_src(const char *rel)
{
    return env_path("HX_SOURCE_DIR", rel);
}

void net_init(net_t *n)
{
    memset(n, 0, sizeof *n);
    snprintf(n->dir, sizeof n->dir, "/tmp/handoff-test-XXXXXX");
    cr_assert_not_null(mkdtemp(n->dir));
}

pid_t net_spawn(net_t *n, const char *name, const char *const argv[])
{
    size_t slot = 0;                            /* reuse the slot of a process already reaped */
    while (slot < n->n && n->procs[slot].pid > 0)
        slot++;
    cr_assert_lt(slot, NET_MAX_PROCS);
    char log[512];
    snprintf(log, sizeof log, "%s/%s.log", n->dir, name);
    hx_proc_t p;
    cr_assert_eq(hx_spawn(&(hx_spawn_opts_t){.argv = argv, .log = log}, &p), 0, "cannot start %s", argv[0]);
    n->procs[slot].pid = p.pid;
    snprintf(n->procs[slot].name, sizeof n->procs[0].name, "%s", name);
    if (slot == n->n)
        n->n++;
    return p.pid;
}

bool net_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool file_exists_cond(void *arg)
{
    return net_file_exists(arg);
}

/* Between two looks: 20 ms, or twice what the last look took (up to 400 ms). A look that runs
 * the CLI costs a process start (125 ms of CPU under the sanitizers, 30 ms without): polled
 * every 20 ms it would take most of a core from the programs under test. */
enum { NAP_MIN_MS = 20, NAP_MAX_MS = 400 };

bool net_wait(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    struct timespec start, before, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &before);
        if (cond(arg))
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed > timeout_ms)
            return false;
        long look = (now.tv_sec - before.tv_sec) * 1000 + (now.tv_nsec - before.tv_nsec) / 1000000;
        long ms = 2 * look < NAP_MIN_MS ? NAP_MIN_MS : 2 * look > NAP_MAX_MS ? NAP_MAX_MS : 2 * look;
        if (ms > timeout_ms - elapsed)
            ms = timeout_ms - elapsed + 1;      /* one last look just after the deadline */
        struct timespec nap = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&nap, NULL);
    }
}

/* The kernel may hand the same ephemeral port to two binds of port 0 once the first socket is
 * closed, so a test choosing several ports (a cluster's: three per node) could get one twice.
 * The ports this process has handed out are remembered and never handed out again. */
int net_free_port(void)
{
    static int given[512];
    static size_t n_given;
    for (int tries = 0; tries < 1000; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(fd, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        int port = ntohs(a.sin_port);
        bool seen = false;
        for (size_t i = 0; i < n_given && !seen; i++)
            seen = given[i] == port;
        if (seen)
            continue;
        if (n_given < sizeof given / sizeof given[0])
            given[n_given++] = port;
        return port;
    }
    cr_assert_fail("no free port on 127.0.0.1 that this test has not used already");
    return -1;
}

void net_start_broker(net_t *n, const char *const extra[])
{
    char ready[512];
    snprintf(ready, sizeof ready, "%s/broker.endpoint", n->dir);
    unlink(ready);
    const char *argv[32] = {net_bin("broker/handoff-broker"), "--bind", "tcp://127.0.0.1:*", "--ready-file", ready,
                            "--log-level", "debug"};
    size_t k = 7;
    bool curve = false;
    for (size_t i = 0; extra && extra[i] && k < 30; i++) {
        curve |= strcmp(extra[i], "--curve-secret") == 0;
        argv[k++] = extra[i];
    }
    if (!curve)
        argv[k++] = "--plain-tcp-for-tests";    /* on 127.0.0.1 only; test_security runs CURVE */
    argv[k] = NULL;
    net_spawn(n, "broker", argv);
    cr_assert(net_wait(file_exists_cond, ready, 10000), "the broker did not start (see %s/broker.log)", n->dir);
    FILE *f = fopen(ready, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(n->endpoint, sizeof n->endpoint, f));
    fclose(f);
    n->endpoint[strcspn(n->endpoint, "\n")] = '\0';
}

void net_start_broker_open(net_t *n, const char *const extra[])
{
    const char *argv[32] = {"--policy", net_src("tests/integration/policy-any.json")};
    size_t k = 2;
    for (size_t i = 0; extra && extra[i] && k < 31; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    net_start_broker(n, argv);
}

const char *net_store(net_t *n, const char *file, char *out, size_t cap)
{
    char why[1024];
    cr_assert_eq(hx_pgtest_store_url(n->dir, file, out, cap, why, sizeof why), 0, "%s", why);
    return out;
}

void net_start_services(net_t *n, const char *start)
{
    char intake_db[512];
    net_store(n, "intake.db", intake_db, sizeof intake_db);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", n->endpoint, "--db", intake_db, NULL};
    const char *triage[] = {net_bin("services/triage/handoff-triage"), "--broker", n->endpoint, "--rules",
                            net_src("services/triage/rules.json"), NULL};
    char db[512];
    net_store(n, "scheduling.db", db, sizeof db);
    const char *sched[] = {net_bin("services/scheduling/handoff-scheduling"), "--broker", n->endpoint,
                           "--directory", net_src("deploy/sample/directory.json"), "--start", start, "--db", db, NULL};
    net_spawn(n, "intake", intake);
    net_spawn(n, "triage", triage);
    net_spawn(n, "scheduling", sched);
}

void net_start_front(net_t *n)
{
    char intake_db[512];
    net_store(n, "intake.db", intake_db, sizeof intake_db);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", n->endpoint, "--db", intake_db,
                            NULL};
    const char *triage[] = {net_bin("services/triage/handoff-triage"), "--broker", n->endpoint, "--rules",
                            net_src("services/triage/rules.json"), NULL};
    net_spawn(n, "intake", intake);
    net_spawn(n, "triage", triage);
}

pid_t net_start_scheduling(net_t *n, const char *name, const char *start, const char *db, const char *const extra[])
{
    char dbpath[512];
    if (db)
        snprintf(dbpath, sizeof dbpath, "%s", db);
    else
        net_store(n, "scheduling.db", dbpath, sizeof dbpath);
    const char *argv[32] = {net_bin("services/scheduling/handoff-scheduling"), "--broker", n->endpoint, "--directory",
                            net_src("deploy/sample/directory.json"), "--start", start, "--db", dbpath};
    size_t k = 9;
    for (size_t i = 0; extra && extra[i] && k < 31; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    return net_spawn(n, name, argv);
}

static void forget(net_t *n, pid_t pid)
{
    for (size_t i = 0; i < n->n; i++)
        if (n->procs[i].pid == pid)
            n->procs[i].pid = 0;
}

void net_kill9(net_t *n, pid_t pid)
{
    hx_spawn_stop(pid, SIGKILL, -1, NULL);
    forget(n, pid);
}

int net_stop(net_t *n, pid_t pid, int sig)
{
    int status = 0;
    if (hx_spawn_stop(pid, sig, NET_GRACE_MS, &status) != 0)
        status = -1;                            /* stuck, killed */
    forget(n, pid);
    return status;
}

pid_t net_pid(const net_t *n, const char *name)
{
    for (size_t i = 0; i < n->n; i++)
        if (n->procs[i].pid > 0 && strcmp(n->procs[i].name, name) == 0)
            return n->procs[i].pid;
    return 0;
}

int net_stop_all(net_t *n)
{
    int bad = 0;
    for (size_t i = n->n; i-- > 0;)             /* services first, the broker last */
        if (n->procs[i].pid > 0)
            kill(n->procs[i].pid, SIGTERM);
    for (size_t i = n->n; i-- > 0;) {
        pid_t pid = n->procs[i].pid;
        if (pid <= 0)
            continue;
        int status = 0;
        int rc = hx_spawn_stop(pid, 0, NET_GRACE_MS, &status);
        if (rc != 0 || (WIFEXITED(status) && WEXITSTATUS(status) != 0) ||
            (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM)) {
            fprintf(stderr, "%s %s (status %d); its log is in %s\n", n->procs[i].name,
                    rc == 1 ? "did not stop within 10 s and was killed" : "exited badly", status, n->dir);
            bad++;
        }
        n->procs[i].pid = 0;
    }
    if (bad == 0 && !getenv("HX_KEEP_TEST_DIR")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", n->dir);
        if (system(cmd) != 0)
            bad++;
    }
    n->n = 0;
    return bad;
}

int net_cli(net_t *n, const char *clinic, char *out, size_t cap, const char *const args[])
{
    char home[512], log[512];
    snprintf(home, sizeof home, "%s/home", n->dir);
    snprintf(log, sizeof log, "%s/cli.log", n->dir);
    const char *argv[32] = {net_bin("services/cli/handoff"), "--broker", n->endpoint, "--clinic", clinic,
                            "--home", home};
    size_t k = 7;
    for (size_t i = 0; args[i] && k < 31; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    int code = -1;
    hx_spawn_opts_t o = {.argv = argv, .err_log = log, .out_pipe = true};
    cr_assert_eq(hx_spawn_run(&o, out, cap, NULL, 0, &code), 0, "cannot start %s", argv[0]);
    return code;
}

hx_client_t *net_session(const net_t *n, hx_role_t role, const char *name)
{
    char err[256];
    hx_client_opts_t o = {.endpoint = n->endpoint, .clinic = name, .role = role, .timeout_ms = 5000};
    hx_client_t *c = hx_client_connect(&o, err, sizeof err);
    cr_assert_not_null(c, "connect %s: %s (see %s/broker.log)", name, err, n->dir);
    return c;
}

int net_cli_json(net_t *n, const char *clinic, json_t **out, ...)
{
    static char buf[1 << 20];
    const char *args[24] = {"--json", "--timeout-ms", "10000"};
    size_t k = 3;
    va_list ap;
    va_start(ap, out);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        cr_assert_lt(k, 23, "net_cli_json: too many arguments");
        args[k++] = a;
    }
    va_end(ap);
    args[k] = NULL;
    int rc = net_cli(n, clinic, buf, sizeof buf, args);
    json_error_t jerr;
    *out = json_loads(buf, 0, &jerr);
    return rc;
}

const char *net_jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

void net_inbox_row(json_t *inbox, const char *rid, const char *d, char *out, size_t cap)
{
    const char *key;
    json_t *rows;
    out[0] = '\0';
    json_object_foreach(inbox, key, rows) {
        size_t i;
        json_t *v;
        json_array_foreach(rows, i, v) {
            json_t *b = json_array_get(json_object_get(v, "bookings"), 0);
            if (!strcmp(net_jstr(v, "referral_id"), rid) && !strcmp(net_jstr(v, "side"), "received") &&
                !strcmp(net_jstr(b, "discipline"), d))
                snprintf(out, cap, "%s/%s", key, net_jstr(v, "status"));
        }
    }
}

void net_nap_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int64_t net_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool net_dir_holds(const char *dir, const void *needle, size_t n)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    struct dirent *de;
    bool found = false;
    while (!found && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            found = net_dir_holds(p, needle, n);
            continue;
        }
        FILE *f = S_ISREG(st.st_mode) ? fopen(p, "rb") : NULL;
        if (!f)
            continue;
        char *data = st.st_size ? malloc((size_t)st.st_size) : NULL;
        size_t len = data ? fread(data, 1, (size_t)st.st_size, f) : 0;
        fclose(f);
        found = data && memmem(data, len, needle, n) != NULL;
        free(data);
    }
    closedir(d);
    return found;
}

void net_fini_verdict(int bad, const char *dir)
{
    if (!bad)
        return;
    fprintf(stderr, "%d process(es) did not stop cleanly: an exit status other than 0 or a sanitizer's report "
                    "(logs in %s)\n", bad, dir);
    cr_expect_eq(bad, 0, "%d process(es) did not stop cleanly (logs in %s)", bad, dir);
    abort();
}
