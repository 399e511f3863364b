/* hx-pgtest-server — hx_pgtest's throw-away PostgreSQL server as a program, for the tests not
 * written in C (tests/web's, in Python). It starts the server, makes a database named by its
 * argument (default "handoff"), prints one line "url URL" (that database's) and then reads
 * commands on standard input, one per line, answering "ok" or "error WHY":
 *   stop      stops the server (fast shutdown), the cluster kept
 *   start     starts it again on the same port
 * End of input, SIGTERM or SIGINT: the server is stopped and its directory removed. The server
 * dies with this program in any case (hx_pgtest.h). */
#define _GNU_SOURCE
#include "hx_pgtest.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "handoff";
    struct sigaction sa = {.sa_handler = on_signal};     /* no SA_RESTART: a read is cut short */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    hx_pgtest_t pg;
    char why[2048], url[1024];
    if (hx_pgtest_start(&pg, why, sizeof why) != 0) {
        printf("error %s\n", why);
        return 1;
    }
    if (hx_pgtest_database(pg.url, name, url, sizeof url, why, sizeof why) != 0) {
        printf("error %s\n", why);
        hx_pgtest_destroy(&pg);
        return 1;
    }
    printf("url %s\n", url);
    fflush(stdout);
    char line[64];
    size_t n = 0;
    while (!stopping) {
        char c;
        ssize_t got = read(0, &c, 1);
        if (got == 0 || (got < 0 && errno != EINTR))
            break;
        if (got < 0)
            continue;
        if (c != '\n') {
            if (n + 1 < sizeof line)
                line[n++] = c;
            continue;
        }
        line[n] = '\0';
        n = 0;
        int rc = !strcmp(line, "stop") ? hx_pgtest_stop(&pg)
                 : !strcmp(line, "start") ? hx_pgtest_restart(&pg, why, sizeof why)
                                          : (snprintf(why, sizeof why, "unknown command"), -1);
        if (rc == 0)
            printf("ok\n");
        else
            printf("error %s\n", !strcmp(line, "stop") ? "the server had to be killed" : why);
        fflush(stdout);
    }
    hx_pgtest_destroy(&pg);
    return 0;
}
