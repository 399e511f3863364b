/* hx_pgtest — see hx_pgtest.h. */
#define _GNU_SOURCE
#include "hx_pgtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* The last lines of the server's log, for a failure's message. */
static void log_tail(const hx_pgtest_t *pg, char *out, size_t cap)
{
    char path[300];
    snprintf(path, sizeof path, "%s/server.log", pg->dir);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (!f)
        return;
    char buf[4096];
    size_t n = 0;
    if (fseek(f, -(long)(sizeof buf - 1), SEEK_END) != 0)
        rewind(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    size_t len = strlen(buf), from = len + 1 > cap ? len + 1 - cap : 0;
    memcpy(out, buf + from, len - from + 1);
}

/* Runs argv as the server's user, its output appended to server.log; the child dies with this
 * thread. */
static pid_t run(const hx_pgtest_t *pg, const char *const argv[])
{
    char log[300];
    snprintf(log, sizeof log, "%s/server.log", pg->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    if (pg->uid && (setgroups(0, NULL) != 0 || setgid(pg->gid) != 0 || setuid(pg->uid) != 0))
        _exit(126);
    prctl(PR_SET_PDEATHSIG, SIGINT);    /* after the change of user, which clears it */
    if (getppid() != parent)
        _exit(1);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

static int wait_ready(hx_pgtest_t *pg, char *why, size_t cap)
{
    char info[200];
    snprintf(info, sizeof info, "host=127.0.0.1 port=%d user=handoff dbname=postgres connect_timeout=2", pg->port);
    uint64_t deadline = now_ms() + 60000;
    while (now_ms() < deadline) {
        if (PQping(info) == PQPING_OK)
            return 0;
        int status;
        if (waitpid(pg->pid, &status, WNOHANG) == pg->pid) {
            pg->pid = 0;
            char tail[1500];
            log_tail(pg, tail, sizeof tail);
            snprintf(why, cap, "the PostgreSQL server exited at start: %s", tail);
            return -1;
        }
        pause_ms(20);               /* polled: the server says nothing when it is ready */
    }
    snprintf(why, cap, "the PostgreSQL server did not accept connections within 60 s");
    return -1;
}

static int start_server(hx_pgtest_t *pg, char *why, size_t cap)
{
    char postgres[300], data[300], port[16];
    snprintf(postgres, sizeof postgres, "%s/postgres", pg->bindir);
    snprintf(data, sizeof data, "%s/data", pg->dir);
    snprintf(port, sizeof port, "%d", pg->port);
    char sockets[300];
    snprintf(sockets, sizeof sockets, "unix_socket_directories=%s", pg->dir);
    const char *argv[] = {postgres, "-D", data, "-p", port, "-c", "listen_addresses=127.0.0.1", "-c", sockets,
                          "-c", "max_connections=40", "-c", "shared_buffers=16MB", NULL};
    pg->pid = run(pg, argv);
    if (pg->pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        pg->pid = 0;
        return -1;
    }
    return wait_ready(pg, why, cap);
}

/* The server's programs: HX_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin. */
static int find_bindir(char *out, size_t cap, char *why, size_t wcap)
{
    const char *env = getenv("HX_PG_BINDIR");
    if (env && env[0]) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        snprintf(why, wcap, "no PostgreSQL server: /usr/lib/postgresql/*/bin/postgres not found (Debian package "
                 "postgresql; `make deps` installs it)");
        globfree(&g);
        return -1;
    }
    snprintf(out, cap, "%s", g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    *strrchr(out, '/') = '\0';
    return 0;
}

int hx_pgtest_start(hx_pgtest_t *pg, char *why, size_t cap)
{
    memset(pg, 0, sizeof *pg);
    if (find_bindir(pg->bindir, sizeof pg->bindir, why, cap) != 0)
        return -1;
    snprintf(pg->dir, sizeof pg->dir, "/tmp/hx-pg-XXXXXX");
    if (!mkdtemp(pg->dir)) {
        snprintf(why, cap, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    if (geteuid() == 0) {           /* the server refuses to run as root */
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            snprintf(why, cap, "running as root and there is no user 'postgres' to run the server as");
            return -1;
        }
        pg->uid = pw->pw_uid;
        pg->gid = pw->pw_gid;
        if (chown(pg->dir, pg->uid, pg->gid) != 0) {
            snprintf(why, cap, "chown %s: %s", pg->dir, strerror(errno));
            return -1;
        }
    }
    char initdb[300], data[300];
    snprintf(initdb, sizeof initdb, "%s/initdb", pg->bindir);
    snprintf(data, sizeof data, "%s/data", pg->dir);
    const char *argv[] = {initdb, "-D", data, "-U", "handoff", "-A", "trust", "-E", "UTF8", "--no-sync",
                          "--no-instructions", NULL};
    pid_t pid = run(pg, argv);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char tail[1500];
        log_tail(pg, tail, sizeof tail);
        snprintf(why, cap, "initdb failed: %s", tail);
        return -1;
    }
    pg->port = free_port();
    snprintf(pg->url, sizeof pg->url, "postgresql://handoff@127.0.0.1:%d/postgres", pg->port);
    return start_server(pg, why, cap);
}

int hx_pgtest_stop(hx_pgtest_t *pg)
{
    if (!pg->pid)
        return 0;
    kill(pg->pid, SIGINT);          /* fast shutdown */
    uint64_t deadline = now_ms() + 30000;
    int status, rc = 0;
    while (waitpid(pg->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pg->pid, SIGKILL);
            waitpid(pg->pid, &status, 0);
            rc = -1;
            break;
        }
        pause_ms(10);
    }
    pg->pid = 0;
    return rc;
}

int hx_pgtest_restart(hx_pgtest_t *pg, char *why, size_t cap)
{
    hx_pgtest_stop(pg);
    return start_server(pg, why, cap);
}

void hx_pgtest_destroy(hx_pgtest_t *pg)
{
    hx_pgtest_stop(pg);
    if (pg->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "hx_pgtest: could not remove %s\n", pg->dir);
        pg->dir[0] = '\0';
    }
}

static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message;       /* "does not exist, skipping" */
}

int hx_pgtest_database(const char *server_url, const char *name, char *url, size_t cap, char *why, size_t wcap)
{
    PGconn *c = PQconnectdb(server_url);
    PQsetNoticeProcessor(c, quiet, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(why, wcap, "%s: %s", server_url, PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    char sql[200];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\"", name);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
    PGresult *res = PQexec(c, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc)
        snprintf(why, wcap, "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
    /* the server's URL ends in /postgres: the same with the new database */
    const char *slash = strrchr(server_url, '/');
    if (rc == 0)
        snprintf(url, cap, "%.*s/%s", (int)(slash ? slash - server_url : (long)strlen(server_url)), server_url, name);
    return rc;
}

bool hx_pgtest_wanted(void)
{
    const char *s = getenv("HX_TEST_STORE");
    return s && strcmp(s, "postgres") == 0;
}

int hx_pgtest_store_url(const char *dir, const char *file, char *url, size_t cap, char *why, size_t wcap)
{
    if (!hx_pgtest_wanted()) {
        snprintf(url, cap, "%s/%s", dir, file);
        return 0;
    }
    const char *server = getenv("HX_TEST_PG_URL");
    if (!server) {
        const char *e = getenv("HX_TEST_PG_ERROR");
        snprintf(why, wcap, "HX_TEST_STORE=postgres but no server: %s", e ? e : "the suite did not start one");
        return -1;
    }
    /* one database per directory (a test's or a network's), named after it */
    const char *base = strrchr(dir, '/');
    char name[64];
    snprintf(name, sizeof name, "t_%s", base ? base + 1 : dir);
    for (char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            *p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : '_';
    char marker[512];
    snprintf(marker, sizeof marker, "%s/.pg-database", dir);
    const char *slash = strrchr(server, '/');
    if (access(marker, F_OK) == 0) {           /* made for this directory already */
        snprintf(url, cap, "%.*s/%s", (int)(slash ? slash - server : (long)strlen(server)), server, name);
        return 0;
    }
    if (hx_pgtest_database(server, name, url, cap, why, wcap) != 0)
        return -1;
    FILE *f = fopen(marker, "w");
    if (f)
        fclose(f);
    return 0;
}

/* Whether buf[0..n) holds needle, as it is or (bytea in pg_dump's text) in lower-case hex. */
static bool holds(const char *buf, size_t n, const void *needle, size_t len)
{
    if (memmem(buf, n, needle, len))
        return true;
    char hex[2 * 256 + 1];
    if (len > 256)
        return false;
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)needle)[i]);
    return memmem(buf, n, hex, 2 * len) != NULL;
}

static bool file_holds(const char *path, const void *needle, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static char buf[8 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, len) != NULL;
}

int hx_pgtest_store_has(const char *url, const void *needle, size_t len)
{
    if (strncmp(url, "postgresql://", 13)) {
        char wal[1100];
        snprintf(wal, sizeof wal, "%s-wal", url);
        return file_holds(url, needle, len) || file_holds(wal, needle, len);
    }
    char bindir[512], why[512], cmd[2048];
    if (find_bindir(bindir, sizeof bindir, why, sizeof why) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "'%s/pg_dump' --data-only --dbname='%s' 2>/dev/null", bindir, url);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *more = realloc(buf, cap *= 2);
            if (!more) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
        }
        size_t got = fread(buf + n, 1, cap - n, p);
        if (!got)
            break;
        n += got;
    }
    int st = pclose(p);
    int rc = !buf || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || n == 0 ? -1 : holds(buf, n, needle, len);
    free(buf);
    return rc;
}
