#include "hx_sqlite.h"

#include <time.h>

int hx_sqlite_wal(sqlite3 *db, unsigned timeout_ms)
{
    int rc;
    for (unsigned waited = 0;; waited += 10) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY || waited >= timeout_ms)
            return rc;
        struct timespec nap = {0, 10 * 1000000};
        nanosleep(&nap, NULL);
    }
}
