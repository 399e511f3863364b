/* hx_pgtest — a throw-away PostgreSQL server for tests: Debian's postgresql package's server
 * (the newest under /usr/lib/postgresql/, or $HX_PG_BINDIR), a fresh cluster in a temporary
 * directory (initdb, trust authentication for the user "handoff"), listening on 127.0.0.1 only,
 * on a port chosen free. Run as root, the server runs as the user "postgres" (the package's),
 * which owns the directory. The server dies with the thread that started it (PR_SET_PDEATHSIG
 * set after the change of user), so a test that crashes leaves nothing behind. */
#ifndef HX_PGTEST_H
#define HX_PGTEST_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    char dir[256];              /* the cluster's directory (data/, server.log, the socket) */
    char bindir[256];
    char url[320];              /* postgresql://handoff@127.0.0.1:PORT/postgres */
    int port;
    pid_t pid;                  /* the server, while it runs */
    uid_t uid;                  /* the user it runs as (0: as this process) */
    gid_t gid;
} hx_pgtest_t;

/* Makes the cluster and starts the server, waiting until it accepts connections. 0, or -1
 * with why (no server installed, initdb or the start failed: the log's tail). */
int hx_pgtest_start(hx_pgtest_t *pg, char *why, size_t cap);
/* Stops the server (fast shutdown: sessions cut, a checkpoint) and waits for it; 0, or -1 when
 * it had to be killed. The cluster stays for hx_pgtest_restart. */
int hx_pgtest_stop(hx_pgtest_t *pg);
/* Starts the stopped server again on the same port and cluster, waiting until it accepts. */
int hx_pgtest_restart(hx_pgtest_t *pg, char *why, size_t cap);
/* Stops the server if it runs and removes the directory. */
void hx_pgtest_destroy(hx_pgtest_t *pg);
/* A new, empty database name on the server at server_url (one of the same name dropped
 * first); its URL in url. 0, or -1 with why. */
int hx_pgtest_database(const char *server_url, const char *name, char *url, size_t cap, char *why, size_t wcap);

/* The suites that run on either store (ctest runs them twice: HX_TEST_STORE=postgres the
 * second time). Whether this run is on PostgreSQL: */
bool hx_pgtest_wanted(void);
/* The store for a test's directory dir: dir/file on SQLite; on PostgreSQL a database of its
 * own, made at the first call for dir on the suite's server (HX_TEST_PG_URL, started by
 * hx_pgtest_hooks.h). 0, or -1 with why. */
int hx_pgtest_store_url(const char *dir, const char *file, char *url, size_t cap, char *why, size_t wcap);
/* Whether the store at url (hx_pgtest_store_url's) holds needle anywhere: a SQLite file or its
 * WAL byte for byte; a PostgreSQL database as pg_dump --data-only writes it, the bytes as they
 * are or in hex (bytea). 1, 0, or -1 when it could not be read (a dump that failed). */
int hx_pgtest_store_has(const char *url, const void *needle, size_t len);

#endif
